"""SQLite writers queue on the writer lock file: two consumers of one warrant, exactly one wins.

The store takes an exclusive ``flock`` on ``<database>-writelock`` before
``BEGIN IMMEDIATE`` so concurrent writers wait in the kernel instead of
polling on SQLite's busy timeout. The lock only orders writers; these tests
check it never lets two in at once (two processes racing to consume the same
warrant: one runs the action, the other is refused as a replay), that a
waiting writer really waits and then proceeds, and that a writer stuck
behind a held lock gives up with a clear error instead of hanging.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import stat
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine import Config
from hitlgate.engine.workflow import Engine
from hitlgate.errors import InvalidWarrant, StorageError
from tests.workflow._helpers import proposal, signed

RACES = 6
TIMEOUT = 120


def _consumer(url: str, key_dir: str, tokens: list[tuple[str, dict[str, Any]]], barrier: Any, out: Any) -> None:
    try:
        engine = Engine(Config(state_url=url, key_dir=Path(key_dir)), demo=True)
        guard = engine.guard()
        won: list[int] = []
        refused: list[str] = []
        for i, (token, action) in enumerate(tokens):
            barrier.wait(timeout=60)
            try:
                guard.execute(token, action, lambda a: None)
                won.append(i)
            except InvalidWarrant as exc:
                refused.append(exc.code)
        engine.close()
        out.put({"won": won, "refused": refused})
    except BaseException:
        out.put({"error": traceback.format_exc()})


@pytest.fixture
def sqlite_engine(tmp_path: Path, bundled_decider: Any) -> Iterator[Engine]:
    """An engine on a SQLite file (the writer queue is SQLite's), on the shared decider."""
    engine = Engine(Config(state_url=f"sqlite:///{tmp_path / 'state.db'}", key_dir=tmp_path / "keys"),
                    bundled_decider, demo=True)
    yield engine
    engine.store.close()


def _granted(engine: Engine, n: int) -> tuple[str, dict[str, Any]]:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner", n=n))
    engine.approve(signed(req, "carol", at=engine.now()))
    return engine.warrant(req.id).token, dict(req.action)


@pytest.mark.slow
def test_two_processes_consuming_one_warrant_exactly_one_wins(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    key_dir = tmp_path / "keys"
    parent = Engine(Config(state_url=url, key_dir=key_dir), demo=True)
    assert parent.store.writer_queue is not None
    tokens = [_granted(parent, i) for i in range(RACES)]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [ctx.Process(target=_consumer, args=(url, str(key_dir), tokens, barrier, out), daemon=True)
             for _ in range(2)]
    try:
        for p in procs:
            p.start()
        try:
            results = [out.get(timeout=TIMEOUT) for _ in procs]
        except queue.Empty:
            pytest.fail(f"a consumer did not report within {TIMEOUT} s")
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, errors[0]
    for i in range(RACES):
        assert sum(i in r["won"] for r in results) == 1, results
    assert sorted(c for r in results for c in r["refused"]) == ["replay"] * RACES
    parent.verify_audit()
    parent.close()


def test_a_writer_waits_for_the_lock_then_proceeds(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    wq = engine.store.writer_queue
    assert wq is not None
    held = wq.acquire()
    assert held is not None
    done = threading.Event()
    failed: list[BaseException] = []

    def propose() -> None:
        try:
            engine.propose(proposal(n=1))
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread.
            failed.append(exc)
        done.set()

    worker = threading.Thread(target=propose)
    worker.start()
    try:
        # Queued behind the lock this thread holds (another open file, so
        # threads exclude each other as processes do).
        assert not done.wait(0.5)
    finally:
        wq.release(held)
    assert done.wait(30)
    worker.join(timeout=30)
    assert not failed, failed
    assert len(engine.list()) == 1


def test_a_writer_stuck_behind_a_held_lock_gives_up_and_leaves_no_lock_behind(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    wq = engine.store.writer_queue
    assert wq is not None
    wq.timeout = 0.3
    held = wq.acquire()
    try:
        with pytest.raises(StorageError, match=r"write lock .*writelock\) was held by another writer") as info:
            engine.propose(proposal(n=1))
        assert info.value.code == "busy"
    finally:
        wq.release(held)
    # The abandoned waiter got the lock once it was free and let it go at
    # once: the next write does not wait for it.
    wq.timeout = 5
    engine.propose(proposal(n=2))
    assert [r.proposal["action"]["parameters"]["n"] for r in engine.list()] == [2]


def test_writer_lock_file_is_private(sqlite_engine: Engine, tmp_path: Path) -> None:
    sqlite_engine.propose(proposal(n=1))
    lock = Path(f"{tmp_path / 'state.db'}-writelock")
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600

"""Threat: two executors in two processes race to run one warrant on SQLite; exactly one may run the action.

The other is refused as a replay, for every one of several races, and the
audit chain verifies afterwards. Real processes, real SQLite file locks.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import traceback
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine import Config
from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import InvalidWarrant
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


def _granted(engine: Engine, n: int) -> tuple[str, dict[str, Any]]:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner", n=n))
    engine.approve(signed(req, "carol", at=engine.now()))
    return engine.warrant(req.id).token, dict(req.action)


@pytest.mark.slow
def test_two_processes_consuming_one_warrant_exactly_one_wins(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    key_dir = tmp_path / "keys"
    parent = Engine(Config(state_url=url, key_dir=key_dir), demo=True)
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



"""A SQLite write is on disk before it returns, and its disk flush does not hold the write lock.

The store commits in WAL mode with ``synchronous=NORMAL`` and then fsyncs
the log file itself, once the write lock is free (a group commit across
processes). These tests watch the real fsync calls on a real SQLite file:
every write transaction syncs the database's ``-wal`` file after it
committed and before it returns, while another connection can already
take the write lock; a warrant's checkpoint reaches the anchor file only
after the commit it records is synced; and a flush that fails is an
error, on which the guard does not run the action.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.store import Store, _sync_wal
from hitlgate.errors import InvalidWarrant, StorageError
from tests.workflow._helpers import granted_warrant, proposal


class FsyncWatch:
    """Records the path of every fsync'd descriptor and whether the store's write lock was free at that moment."""

    def __init__(self, db: Path, real: Callable[[int], None]) -> None:
        self.db = db
        self.real = real
        self.calls: list[tuple[str, bool]] = []
        self.fail_on: str | None = None

    def __call__(self, fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        self.calls.append((path, self._lock_free()))
        if self.fail_on is not None and path.endswith(self.fail_on):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.real(fd)

    def _lock_free(self) -> bool:
        other = sqlite3.connect(self.db, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            other.close()

    def of(self, suffix: str) -> list[bool]:
        return [free for path, free in self.calls if path.endswith(suffix)]


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch, db_url: str) -> FsyncWatch:
    db = Path(db_url.removeprefix("sqlite:///"))
    spy = FsyncWatch(db, os.fsync)
    monkeypatch.setattr(os, "fsync", spy)
    return spy


def test_connections_commit_without_a_sync_in_wal_mode_and_keep_full_sync_otherwise(tmp_path: Path) -> None:
    wal = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    # An in-memory database has no WAL: the PRAGMA answers "memory", and the commit itself must sync (FULL).
    no_wal = Store.open("sqlite:///:memory:")
    try:
        with wal.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
            assert conn.info["hitlgate_wal_file"] == f"{tmp_path / 'state.db'}-wal"
        with no_wal.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() != "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
            assert "hitlgate_wal_file" not in conn.info
    finally:
        wal.close()
        no_wal.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_write_syncs_the_log_after_the_lock_is_free(db_url: str, watch: FsyncWatch) -> None:
    store = Store.open(db_url)
    try:
        assert watch.of("state.db-wal") == [True]  # Opening it migrates (nothing to do: a write all the same).
        watch.calls.clear()
        with store.write():
            pass
        assert watch.of("state.db-wal") == [True]
        with store.read():
            pass
        assert watch.of("state.db-wal") == [True]  # A read syncs nothing.
        with pytest.raises(RuntimeError, match="^no$"), store.write():
            raise RuntimeError("no")
        assert watch.of("state.db-wal") == [True]  # Rolled back: nothing to sync.
    finally:
        store.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_flow_syncs_each_commit_before_it_returns_and_before_the_anchor(make_engine: Any,
                                                                           watch: FsyncWatch) -> None:
    engine = make_engine()
    doc = proposal("suspend_service_account", "svc-ci-runner")
    watch.calls.clear()
    engine.propose(doc)
    assert watch.of("state.db-wal") == [True]
    req, token = granted_warrant(engine, doc, ("carol",))
    watch.calls.clear()
    engine.guard().execute(token, doc["action"], lambda action: None)
    synced = [path.rsplit("/", 1)[-1] for path, _ in watch.calls]
    # The consumption's commit is synced before its checkpoint goes to the anchor, then the outcome's.
    assert synced[0] == "state.db-wal" and "state.db-wal" in synced[1:]
    anchor = str(engine.anchor.path)
    first_anchor = next(i for i, (path, _) in enumerate(watch.calls) if path == anchor)
    assert first_anchor > 0 and watch.calls[first_anchor - 1][0].endswith("state.db-wal")
    assert all(free for _, free in watch.calls)
    assert engine.get(req.id).status == "executed"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_failed_flush_of_the_consumption_is_an_error_and_the_action_does_not_run(make_engine: Any,
                                                                                  watch: FsyncWatch) -> None:
    engine = make_engine()
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    ran: list[Any] = []
    watch.fail_on = "state.db-wal"
    with pytest.raises(StorageError, match=r"^committed, but flushing .*state\.db-wal to disk failed: "
                                           r"Input/output error; what this write recorded may be lost"):
        engine.guard().execute(token, doc["action"], ran.append)
    assert ran == []
    watch.fail_on = None
    # Committed and visible: the warrant is spent, so the action cannot run on it after all (at most once).
    assert engine.warrant_records([req.id])[req.id].consumed_at is not None
    with pytest.raises(InvalidWarrant, match="already used"):
        engine.guard().execute(token, doc["action"], ran.append)
    assert ran == []
    engine.verify_audit()  # Raises on any break in the chain, its checkpoints or the anchor.



def test_the_log_is_opened_once_per_connection_and_closed_with_it(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'own.db'}")
    wal = f"{tmp_path / 'own.db'}-wal"
    try:
        for _ in range(3):
            with store.write():
                pass
        with store.engine.connect() as conn:
            fd = conn.info["hitlgate_wal_fd"].fd
        # One descriptor of ours (kept, so a failed write-back is reported to it) beside SQLite's own.
        assert str(fd) in _open_on(wal)
    finally:
        store.close()
    assert str(fd) not in _open_on(wal)


@pytest.mark.parametrize(("replacement", "why"), [
    ("gone", "flushing .*-wal to disk failed: No such file or directory"),
    ("symlink", "flushing .*-wal to disk failed: Too many levels of symbolic links"),
    ("fifo", ".*-wal is not a regular file"),
])
def test_a_log_file_gone_or_not_a_regular_file_is_an_error_not_a_sync_of_something_else(
        tmp_path: Path, replacement: str, why: str) -> None:
    wal = tmp_path / "state.db-wal"
    decoy = tmp_path / "decoy"
    decoy.write_bytes(b"")
    if replacement == "symlink":
        wal.symlink_to(decoy)
    elif replacement == "fifo":
        os.mkfifo(wal)  # Opened without waiting for a writer: refused at once, not hung.
    info: dict[str, Any] = {"hitlgate_wal_file": str(wal)}
    with pytest.raises(StorageError, match=rf"^committed, but {why}"):
        _sync_wal(info)
    assert "hitlgate_wal_fd" not in info


def test_a_log_file_replaced_after_it_was_opened_is_an_error(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    wal = tmp_path / "state.db-wal"
    wal.write_bytes(b"frames")
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    info: dict[str, Any] = {"hitlgate_wal_file": str(wal)}
    _sync_wal(info)
    kept = info["hitlgate_wal_fd"]
    _sync_wal(info)
    assert info["hitlgate_wal_fd"] is kept and synced == [str(wal), str(wal)]  # The same descriptor, kept.
    other = tmp_path / "other"
    other.write_bytes(b"")
    other.rename(wal)
    with pytest.raises(StorageError, match=r"^committed, but .*state\.db-wal was replaced while the store had it "
                                           r"open, so what this write recorded cannot be flushed to disk"):
        _sync_wal(info)
    assert len(synced) == 2
    kept.close()


def _open_on(suffix: str) -> list[str]:
    """This process's descriptors open on a path ending with ``suffix``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # A descriptor closed since the listing.
            if os.readlink(f"/proc/self/fd/{fd}").endswith(suffix):
                found.append(fd)
    return found


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_engines_dropped_without_close_leave_no_descriptor_open(make_engine: Any) -> None:
    # A library user may build and drop engines without closing them: the pool's close event never fires, and
    # the kept descriptor goes with the connection's record instead (a hostile review counted 40 left open).
    first = make_engine()
    first.propose(proposal("suspend_service_account", "svc-ci-runner", note="first"))
    gc.collect()
    before = len(_open_on("state.db-wal"))
    for i in range(30):
        dropped = Engine(first.config, first.decider, clock=first.clock, demo=True)
        dropped.propose(proposal("suspend_service_account", "svc-ci-runner", note=f"n{i}"))
        del dropped
        gc.collect()
    assert len(_open_on("state.db-wal")) == before

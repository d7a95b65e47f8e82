"""A write is on disk before it returns, and its disk flush does not hold the write lock (SQLite and PostgreSQL).

On SQLite the store commits in WAL mode with ``synchronous=NORMAL`` and
then fsyncs the log file itself, once the write lock is free (a group
commit across processes); on PostgreSQL it commits with
``synchronous_commit`` off and then waits for the flush with a
transaction of one statement (the last test). These tests watch the real fsync calls on a real SQLite file:
every write transaction syncs the database's ``-wal`` file after it
committed and before it returns, while another connection can already
take the write lock; a warrant's checkpoint reaches the anchor file only
after the commit it records is synced; and a flush that fails is an
error, on which the guard does not run the action.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from hitlgate.engine.ledger.store import Store
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
    # The memdb VFS has no WAL: the PRAGMA answers "memory", and the commit itself must sync (FULL).
    no_wal = Store.open(f"sqlite:///file:/hitlgate-{os.getpid()}.db?vfs=memdb&uri=true")
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


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgresql_commits_without_waiting_then_waits_for_the_flush_outside_the_lock(db_url: str) -> None:
    # A write commits with synchronous_commit off (its row lock on the chain head goes at once), then one statement
    # that takes a transaction id runs as a transaction of its own under the session's setting: its COMMIT waits for
    # the log up to its record, after the write's. Seen on the real server: what each statement ran under.
    admin = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # The suite's cluster runs with it off; a server meant to be durable has it on.
        conn.exec_driver_sql(f'ALTER DATABASE "{sa.make_url(db_url).database}" SET synchronous_commit = on')
    admin.dispose()
    store = Store.open(db_url)
    seen: list[tuple[str, bool, str]] = []

    def on_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        driver = conn.connection.dbapi_connection
        setting = driver.execute("SHOW synchronous_commit").fetchone()[0]
        seen.append((statement, bool(driver.autocommit), setting))

    try:
        with store.engine.connect() as conn:
            session_default = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
        assert session_default == "on"
        sa_event.listen(store.engine, "before_cursor_execute", on_execute)
        with store.write() as tx:
            xid_inside = tx.conn.exec_driver_sql("SELECT pg_current_xact_id()").scalar()
        sa_event.remove(store.engine, "before_cursor_execute", on_execute)
        assert seen[0] == ("SET LOCAL synchronous_commit TO off", False, session_default)
        assert all(setting == "off" for statement, _, setting in seen[1:-1])
        assert seen[-1] == ("SELECT pg_current_xact_id()", True, session_default)
        with store.engine.connect() as conn:
            # The waiting transaction took an id after the write's: its commit record comes after the write's.
            assert int(conn.exec_driver_sql("SELECT pg_current_xact_id()").scalar()) > int(xid_inside) + 1
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == session_default
    finally:
        store.close()

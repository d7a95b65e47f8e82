"""What every SQLite connection of the store is set to, and how a write transaction takes its lock.

Consumed warrant ids must survive a power loss (WAL with ``synchronous=NORMAL``, the
log synced by the store after each commit: test_sqlite_commit_synced_after_the_lock.py),
concurrent writers must queue rather than fail (WAL, a busy timeout, and
``BEGIN IMMEDIATE`` taking the write lock before the transaction reads
anything it will write after), and the schema's foreign keys must hold.
Read on fresh connections of a real SQLite file.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from hitlgate.engine.ledger.store import SQLITE_BUSY_TIMEOUT_MS, Store, _sqlite_path


def test_every_connection_is_wal_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        for _ in range(2):  # A fresh pooled connection each time gets the same settings.
            with store.engine.connect() as conn:
                pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                          for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
            assert pragma == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1,
                              "busy_timeout": SQLITE_BUSY_TIMEOUT_MS}
            store.engine.dispose()
    finally:
        store.close()


def test_an_in_memory_store_opens_without_wal(tmp_path: Path) -> None:
    store = Store.open("sqlite://")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "memory"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


def test_a_write_transaction_holds_the_write_lock_from_its_start(tmp_path: Path) -> None:
    # Before it writes anything: another writer must wait, so no two transactions build on the same chain head.
    path = tmp_path / "state.db"
    store = Store.open(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with store.write():
            with pytest.raises(sqlite3.OperationalError, match="^database is locked$"):
                other.execute("BEGIN IMMEDIATE")
        with store.read():
            other.execute("BEGIN IMMEDIATE")  # A read transaction takes no write lock.
            other.execute("ROLLBACK")
    finally:
        other.close()
        store.close()


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:///state.db", Path("state.db")),
    ("sqlite:////var/lib/hitlgate/state.db", Path("/var/lib/hitlgate/state.db")),
    ("sqlite:///state.db?timeout=5", Path("state.db")),
    ("sqlite:///data///state.db", Path("data/state.db")),  # Only the first "///" ends the scheme.
    ("sqlite:///state.db?a=1?b=2", Path("state.db")),
    ("sqlite:///file:x.db?mode=ro&uri=true", Path("file:x.db")),
    ("sqlite:///:memory:", None),
    ("sqlite://", None),
    ("sqlite:///", None),
])
def test_the_state_file_of_a_sqlite_url(url: str, path: Path | None) -> None:
    # Absolute as the driver makes it (by text, from the working directory).
    assert _sqlite_path(url) == (None if path is None else Path(os.path.abspath(path)))

"""Database failures reach people as the database's own words plus what to check, never SQLAlchemy's dump."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from hitlgate.engine.ledger.store import _db_message


def _real_error(url: str, sql: str = "SELECT 1") -> OperationalError:
    eng = sa.create_engine(url)
    try:
        with pytest.raises(OperationalError) as exc:
            with eng.begin() as conn:
                conn.execute(sa.text(sql))
        return exc.value
    finally:
        eng.dispose()


def test_missing_directory_names_the_likely_cause(tmp_path: Path) -> None:
    exc = _real_error(f"sqlite:///{tmp_path}/missing/dir/state.db")
    assert _db_message(exc) == (
        "unable to open database file (the file or its directory is missing or not accessible by this process)"
    )


def test_read_only_database_names_the_likely_cause(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    eng.dispose()
    exc = _real_error(f"sqlite:///file:{db}?mode=ro&uri=true", "INSERT INTO t VALUES (1)")
    assert _db_message(exc) == (
        "attempt to write a readonly database (the database file or its directory is not writable by this process)"
    )


def test_other_errors_keep_the_database_text_without_the_background_link(tmp_path: Path) -> None:
    exc = _real_error(f"sqlite:///{tmp_path}/state.db", "SELECT * FROM no_such_table")
    assert "(Background on this error" in str(exc)
    assert _db_message(exc) == "no such table: no_such_table"
    plain = OperationalError("SELECT 1", {}, Exception("x"))
    plain.orig = None  # type: ignore[assignment]
    assert _db_message(plain).startswith("(builtins.Exception) x") and "Background" not in _db_message(plain)

"""Who may read the state store's files, as ``hitlgate doctor`` reports it, and why a path cannot be used.

The SQLite file and its ``-wal``/``-shm`` companions hold live warrant
tokens: any of them readable by group or others is reported, whichever
exist. A PostgreSQL URL names no local file, even one spelled with ``///``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hitlgate.engine.ledger.store import _describe_mode, state_file_exposure


def test_exposed_shm_file_is_reported_even_without_a_wal(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"")
    db.chmod(0o600)
    shm = tmp_path / "state.db-shm"
    shm.write_bytes(b"")
    shm.chmod(0o644)
    assert state_file_exposure(f"sqlite:///{db}") == [
        f"state file {shm} is accessible by group or others (mode 0644) and holds live warrant tokens; "
        f"run: chmod 600 {shm}"
    ]
    shm.chmod(0o600)
    assert state_file_exposure(f"sqlite:///{db}") == []


def test_a_postgresql_url_is_never_taken_for_a_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hitlgate").write_bytes(b"")
    (tmp_path / "hitlgate").chmod(0o644)  # Would be "exposed" if the database name were read as a path.
    assert state_file_exposure("postgresql+psycopg:///hitlgate") == []


def test_a_path_is_described_by_its_mode_owner_and_who_asks(tmp_path: Path) -> None:
    f = tmp_path / "state.db"
    f.write_bytes(b"")
    f.chmod(0o640)
    assert _describe_mode(f) == f"mode 0640, owner uid {os.getuid()}, you are uid {os.geteuid()}"
    assert _describe_mode(tmp_path / "missing") == "No such file or directory"

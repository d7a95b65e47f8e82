"""OS errors while creating or rotating engine keys become hitlgate errors naming the path, never raw OSError."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine.keys import keyring as keys_mod
from hitlgate.engine.keys.keyring import STATE_FILE, EngineKeyring
from hitlgate.errors import ConfigError, HitlgateError, StorageError


def test_key_dir_under_a_regular_file_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a directory")
    key_dir = blocker / "keys"
    with pytest.raises(ConfigError, match=f"cannot create key directory {key_dir}: Not a directory"):
        EngineKeyring.load_or_create(key_dir)
    ring = EngineKeyring(key_dir)
    with pytest.raises(ConfigError, match="plain-file/keys"):
        ring.rotate()


def test_key_dir_that_is_a_regular_file_is_a_config_error(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    key_dir.write_text("a file where the key directory should be")
    with pytest.raises(ConfigError, match=f"key directory {key_dir}"):
        EngineKeyring.load_or_create(key_dir)


def _fail_writes(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = keys_mod._write_new_file

    def write(path: Path, data: bytes) -> None:
        if name in path.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    monkeypatch.setattr(keys_mod, "_write_new_file", write)


def test_first_key_write_failure_is_a_storage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_writes(monkeypatch, ".pem")
    key_dir = tmp_path / "keys"
    with pytest.raises(StorageError, match=f"cannot create engine key {key_dir}/.*\\.pem: No space left on device"):
        EngineKeyring.load_or_create(key_dir)
    assert list(key_dir.glob("*.pem")) == []


def test_state_write_failure_is_a_storage_error_and_leaves_no_orphan_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fail_writes(monkeypatch, STATE_FILE)
    key_dir = tmp_path / "keys"
    with pytest.raises(StorageError, match=f"^cannot write keyring state {key_dir}/\\.{STATE_FILE}\\.[^ ]+: "
                                           "No space left on device$"):
        EngineKeyring.load_or_create(key_dir)
    assert list(key_dir.glob("*.pem")) == []


def test_a_key_directory_that_cannot_be_synced_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The renamed state file is durable only once its directory is synced: a failure there is named.
    ring = EngineKeyring.load_or_create(tmp_path / "keys")
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    monkeypatch.setattr(keys_mod.os, "fsync", fsync)
    with pytest.raises(StorageError, match=f"^cannot sync key directory {ring.key_dir}: Input/output error$"):
        ring.rotate()


def test_rotation_failures_are_storage_errors_and_keep_the_current_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = EngineKeyring.load_or_create(tmp_path / "keys")
    kid = ring.current_kid

    def no_replace(src: Any, dst: Any) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))

    with monkeypatch.context() as m:
        m.setattr(keys_mod.os, "replace", no_replace)
        with pytest.raises(StorageError, match=f"^cannot replace keyring state {ring.key_dir}/{STATE_FILE}: "
                                               "Input/output error$"):
            ring.rotate()
    with monkeypatch.context() as m:
        _fail_writes(m, ".pem")
        with pytest.raises(StorageError, match="cannot create engine key"):
            ring.rotate()
    # Nothing half-done: the old key still signs, no stray files are left.
    ring.refresh()
    assert ring.current_kid == kid
    assert sorted(p.name for p in ring.key_dir.iterdir() if not p.name.startswith(".lock")) == sorted(
        [f"{kid}.pem", STATE_FILE]
    )
    assert issubclass(StorageError, HitlgateError)

"""A key directory this process may not write: keys are read under a read-only lock, never changed.

Found by stop 32's new-user review: on a read-only mount of the project's
``keys/`` directory, every command (``audit verify`` included) failed with
``config_error`` (exit 2, "usage") because the lock file could not be
opened for writing. Reading keys needs only the shared lock, which a
read-only descriptor can take; on a read-only file system without a lock
file nobody can change the keys at all. A command that must create or
change a key is refused as a write to a read-only store is (``read_only``,
exit 1). The file system's refusal is injected at ``os.open`` of the lock
file (a read-only mount needs privileges a test run may not have); the
lock itself is the real ``flock``.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine.keys.keyring import LOCK_FILE, EngineKeyring
from hitlgate.errors import ConfigError, StorageError

_REAL_OPEN = os.open


def refuse_writable_lock_open(monkeypatch: pytest.MonkeyPatch, error: int) -> list[int]:
    """Make opening the lock file for writing fail with ``error``; returns the flags of read-only opens of it."""
    read_only_opens: list[int] = []

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith(LOCK_FILE):
            if flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT):
                raise OSError(error, os.strerror(error), str(path))
            read_only_opens.append(flags)
        return _REAL_OPEN(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    return read_only_opens


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    EngineKeyring.load_or_create(path)  # The first key, made while the directory was writable.
    return path


@pytest.mark.parametrize("error", [errno.EROFS, errno.EACCES])
def test_keys_are_read_under_a_shared_lock_taken_read_only(key_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                           error: int) -> None:
    kid = EngineKeyring.load_or_create(key_dir).current_kid
    opens = refuse_writable_lock_open(monkeypatch, error)
    ring = EngineKeyring.load_or_create(key_dir)
    assert ring.current_kid == kid and kid in ring.public_keys()
    assert opens and all(flags & (os.O_RDWR | os.O_WRONLY) == 0 for flags in opens)


def test_the_read_only_lock_still_waits_for_a_writer(key_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared lock taken read-only is a real one: a writer holding the exclusive lock keeps a reader out."""
    writer = _REAL_OPEN(key_dir / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(writer, fcntl.LOCK_EX)
        refuse_writable_lock_open(monkeypatch, errno.EROFS)
        probe = os.open(key_dir / LOCK_FILE, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(probe)
    finally:
        os.close(writer)


def test_on_a_read_only_file_system_without_a_lock_file_keys_are_read_without_one(
    key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kid = EngineKeyring.load_or_create(key_dir).current_kid
    (key_dir / LOCK_FILE).unlink()
    refuse_writable_lock_open(monkeypatch, errno.EROFS)
    assert EngineKeyring.load_or_create(key_dir).current_kid == kid


def test_without_a_lock_file_and_without_permission_the_read_is_refused_by_name(
    key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (key_dir / LOCK_FILE).unlink()
    refuse_writable_lock_open(monkeypatch, errno.EACCES)
    with pytest.raises(StorageError) as refused:
        EngineKeyring.load_or_create(key_dir)
    assert refused.value.code == "read_only"
    assert str(key_dir / LOCK_FILE) in str(refused.value)


@pytest.mark.parametrize("change", [
    lambda ring: ring.rotate(),
    None,  # The first key of an empty directory.
])
def test_creating_or_changing_a_key_there_is_refused_as_read_only_exit_1(
    tmp_path: Path, key_dir: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[EngineKeyring], Any] | None
) -> None:
    target = key_dir
    if change is None:
        target = tmp_path / "empty-keys"
        target.mkdir(mode=0o700)
    ring = EngineKeyring.load_or_create(key_dir) if change is not None else None
    refuse_writable_lock_open(monkeypatch, errno.EROFS)
    with pytest.raises(StorageError) as refused:
        if change is not None and ring is not None:
            change(ring)
        else:
            EngineKeyring.load_or_create(target)
    assert refused.value.code == "read_only"
    assert refused.value.exit_code == 1  # An environment failure, not a usage error (2).
    assert f"the key directory {target} is not writable (Read-only file system)" in str(refused.value)


def test_a_lock_file_that_cannot_be_opened_for_another_reason_is_still_a_configuration_error(
    key_dir: Path
) -> None:
    (key_dir / LOCK_FILE).unlink()
    (key_dir / LOCK_FILE).symlink_to(key_dir / "elsewhere")  # O_NOFOLLOW: ELOOP, a planted link.
    with pytest.raises(ConfigError, match="cannot open lock file"):
        EngineKeyring.load_or_create(key_dir)

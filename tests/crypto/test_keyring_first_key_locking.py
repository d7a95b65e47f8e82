"""The first engine key is created once, under the keyring's exclusive lock, in a private directory.

Two processes starting at once on an empty key directory must end with one
key: the one that creates it holds the exclusive lock, and the other,
once it gets the lock, reads the key the first made instead of making a
second (which would orphan warrants signed with the first). Here "the
other process" is this test holding the lock file itself, so the order
is forced rather than hoped for.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from hitlgate.engine.keys.keyring import LOCK_FILE, STATE_FILE, EngineKeyring


def test_a_key_made_while_waiting_for_the_lock_is_used_not_replaced(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    key_dir.mkdir(mode=0o700)
    fd = os.open(key_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)  # Another process reading the (empty) keyring.
    got: list[str] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            got.append(EngineKeyring.load_or_create(key_dir).current_kid)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below.
            errors.append(exc)

    worker = threading.Thread(target=first_use, daemon=True)
    try:
        worker.start()
        time.sleep(0.3)
        # No key is created while another process holds the lock, even a shared one.
        assert not (key_dir / STATE_FILE).exists() and not list(key_dir.glob("*.pem"))
        # That other process creates the first key meanwhile (as it would, under its exclusive lock).
        other = EngineKeyring.load_or_create(tmp_path / "other")
        for name in (STATE_FILE, f"{other.current_kid}.pem"):
            shutil.copy2(other.key_dir / name, key_dir / name)
    finally:
        os.close(fd)  # Releases the lock.
    worker.join(timeout=20)
    assert not worker.is_alive() and errors == []
    assert got == [other.current_kid]
    assert [p.stem for p in key_dir.glob("*.pem")] == [other.current_kid]


def test_a_new_key_directory_is_0700_whatever_the_umask_and_needs_no_tightening(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_dir = tmp_path / "deep" / "er" / "keys"  # Its parents do not exist yet either.
    old = os.umask(0)
    try:
        with caplog.at_level(logging.WARNING):
            EngineKeyring.load_or_create(key_dir)
    finally:
        os.umask(old)
    assert os.stat(key_dir).st_mode & 0o777 == 0o700
    assert [r.getMessage() for r in caplog.records if "tightening" in r.getMessage()] == []

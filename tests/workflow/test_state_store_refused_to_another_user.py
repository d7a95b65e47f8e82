"""A state store another user may not open: refused in process, by path, reason and stable code.

The CLI's permission tests (``test_read_only_state.py``) run the real command as root without its
file-mode override; this runs ``Store.open`` itself as ``nobody`` in a forked child, so the checks of
``_sqlite_access`` are exercised in this process's code (a mutation run's mutants included), each with
its whole message and its code. Root ignores file modes, so the child drops to ``nobody`` first.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hitlgate.engine.ledger.store import Store
from tests._require import require_root
from tests.workflow._helpers import everyone_may_enter

NOBODY = 65534


@pytest.fixture
def world() -> Iterator[Path]:
    """A directory everybody may enter (tmp_path is private to root)."""
    require_root("to open a store as nobody")
    with everyone_may_enter("hitlgate-perm-") as base:
        yield base


def _as_nobody(fn: Callable[[], object]) -> tuple[str, str, str | None]:
    """Run ``fn`` in a forked child as nobody: ("opened", what it returned or "", None), or what it raised as
    (exception type, message, code)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe.
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            returned = fn()
            result: tuple[str, str, str | None] = ("opened", "" if returned is None else str(returned), None)
        except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the test.
            result = (type(exc).__name__, str(exc), getattr(exc, "code", None))
        os.write(write_end, pickle.dumps(result))
        os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 60)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("the child opening the store as nobody did not answer in 60 s")
        data = b""
        while chunk := os.read(read_end, 65536):
            data += chunk
    finally:
        os.close(read_end)
        deadline = time.monotonic() + 30
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
    return pickle.loads(data)  # noqa: S301 - our own child's bytes.


def _modes(path: Path) -> str:
    return f"mode {path.stat().st_mode & 0o777:04o}, owner uid 0, you are uid {NOBODY}"


def test_a_state_directory_another_user_cannot_enter_is_refused_by_path_mode_and_code(world: Path) -> None:
    state = world / "state"
    state.mkdir(mode=0o700)
    outcome, message, code = _as_nobody(lambda: Store.open(f"sqlite:///{state / 'state.db'}"))
    assert outcome == "StorageError"
    assert message == (f"cannot open the state store {state / 'state.db'}: its directory {state} cannot be entered "
                       f"(permission denied: {_modes(state)})")
    assert code == "state_unreadable"
    Store.open(f"sqlite:///{state / 'state.db'}").close()  # Root, who ignores modes, opens it.


def test_a_new_store_in_a_directory_another_user_cannot_write_is_refused_by_path_mode_and_code(world: Path) -> None:
    state = world / "state"
    state.mkdir(mode=0o755)
    outcome, message, code = _as_nobody(lambda: Store.open(f"sqlite:///{state / 'state.db'}"))
    assert outcome == "StorageError"
    assert message == (f"cannot create the state store {state / 'state.db'}: its directory {state} is not "
                       f"writable ({_modes(state)})")
    assert code == "state_unwritable"
    assert not (state / "state.db").exists()
    Store.open(f"sqlite:///{state / 'state.db'}").close()  # Root, who ignores modes, creates it.


def test_a_store_file_another_user_cannot_read_is_refused_by_path_mode_and_code(world: Path) -> None:
    state = world / "state"
    state.mkdir(mode=0o777)
    Store.open(f"sqlite:///{state / 'state.db'}").close()  # Made by root, mode 0600.
    outcome, message, code = _as_nobody(lambda: Store.open(f"sqlite:///{state / 'state.db'}"))
    assert outcome == "StorageError"
    db = state / "state.db"
    assert message == f"cannot open the state store {db}: permission denied ({_modes(db)})"
    assert code == "state_unreadable"


def test_a_state_directory_that_user_owns_opens_for_them(world: Path) -> None:
    # The refusals above come from the modes, not from running as nobody: in a directory nobody owns,
    # the store is created and opened.
    state = world / "state"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)
    assert _as_nobody(lambda: Store.open(f"sqlite:///{state / 'state.db'}").close()) == ("opened", "", None)
    assert (state / "state.db").stat().st_uid == NOBODY


def _read_only_reason(url: str) -> str:
    """How the store opens; "(immutable)" when SQLite is told the file cannot change under it."""
    store = Store.open(url)
    try:
        # immutable=1 only where no shared-memory file can be made: a copy in a writable directory is read
        # as a live file, whose owner may still be writing it.
        immutable = " (immutable)" if "immutable=1" in str(store.engine.url) else ""
        return (f"read-only: {store.read_only_reason}" if store.read_only else "read-write") + immutable
    finally:
        store.close()


def test_a_store_file_another_user_may_read_but_not_write_is_opened_read_only_saying_why(world: Path) -> None:
    state = world / "state"
    state.mkdir()
    state.chmod(0o777)  # Past the umask: a directory everybody may write.
    db = state / "state.db"
    Store.open(f"sqlite:///{db}").close()
    db.chmod(0o644)
    outcome = _as_nobody(lambda: _read_only_reason(f"sqlite:///{db}"))
    assert outcome == ("opened", f"read-only: the file is not writable ({_modes(db)})", None)
    assert _read_only_reason(f"sqlite:///{db}") == "read-write"  # Its owner writes it.


def _nobodys_store_in_roots_directory(world: Path) -> tuple[Path, list[Path]]:
    """A store file nobody owns, with its -wal and -shm, in a directory only root may write."""
    state = world / "state"
    state.mkdir(mode=0o755)
    db = state / "state.db"
    Store.open(f"sqlite:///{db}").close()
    sidecars = [Path(f"{db}-wal"), Path(f"{db}-shm")]
    for f in sidecars:
        f.touch()  # Closing the last connection removed them; a reader elsewhere keeps them.
    os.chown(db, NOBODY, NOBODY)
    return db, sidecars


def test_a_store_whose_directory_and_sidecars_another_user_cannot_write_is_opened_read_only(world: Path) -> None:
    # SQLite must write the -wal and -shm files next to the store: with a directory it may not write, a
    # store file it owns is still opened read-only unless both of those already exist and are writable.
    db, sidecars = _nobodys_store_in_roots_directory(world)
    for f in sidecars:
        os.chown(f, 0, 0)
        f.chmod(0o644)
    outcome = _as_nobody(lambda: _read_only_reason(f"sqlite:///{db}"))
    reason = f"read-only: its directory {db.parent} is not writable ({_modes(db.parent)}) (immutable)"
    assert outcome == ("opened", reason, None)


def test_a_store_whose_sidecars_that_user_may_write_is_opened_read_write_in_a_directory_it_cannot(
    world: Path
) -> None:
    db, sidecars = _nobodys_store_in_roots_directory(world)
    for f in sidecars:
        os.chown(f, NOBODY, NOBODY)
    assert _as_nobody(lambda: _read_only_reason(f"sqlite:///{db}")) == ("opened", "read-write", None)

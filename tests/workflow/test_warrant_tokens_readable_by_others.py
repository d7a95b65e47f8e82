"""Attack: another local user reads live warrant tokens out of the SQLite state file.

``warrants.token`` holds full bearer tokens. Before, the state directory was
created 0755 and SQLite created the database 0644 (the usual umask 022), so
``su nobody -c "sqlite3 'file:…/hitlgate.db?immutable=1' 'select token from
warrants'"`` printed a token anyone could execute with. Now a directory
hitlgate creates for the store is 0700 and the database (and so its
``-wal``/``-shm`` files, which SQLite creates with the database's mode) is
0600; an existing file's mode is never loosened, and a world-readable one
is reported by ``hitlgate doctor``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine.ledger.store import Store, _create_private_file
from hitlgate.errors import StorageError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask_022")
def test_new_state_dir_is_0700_and_db_wal_shm_are_0600(tmp_path: Path) -> None:
    db = tmp_path / "new" / "state" / "hitlgate.db"
    store = Store.open(f"sqlite:///{db}")
    try:
        sidecars = [Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert all(p.exists() for p in sidecars), "the open store should hold its WAL files"
        assert {p.name: _mode(p) for p in [db, *sidecars]} == {p.name: 0o600 for p in [db, *sidecars]}
        assert (_mode(db.parent), _mode(db.parent.parent)) == (0o700, 0o700)
    finally:
        store.close()


@pytest.mark.usefixtures("umask_022")
def test_existing_directory_and_db_modes_are_never_rewritten(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o711)
    os.chmod(shared, 0o711)  # noqa: S103 - a shared parent that others may traverse.
    db = shared / "hitlgate.db"
    Store.open(f"sqlite:///{db}").close()
    assert _mode(db) == 0o600
    # An operator's own choice on an existing file is kept (doctor reports it), never rewritten.
    os.chmod(db, 0o640)
    Store.open(f"sqlite:///{db}").close()
    assert (_mode(shared), _mode(db)) == (0o711, 0o640)


@pytest.mark.usefixtures("as_root")
@pytest.mark.usefixtures("umask_022")
def test_nobody_cannot_read_tokens_from_the_state_file() -> None:
    # pytest's tmp_path sits under a 0700 directory nobody cannot enter;
    # a directory under /tmp opened to everyone is what a shared /var/lib is.
    shared = Path(tempfile.mkdtemp(prefix="hitlgate-shared-", dir="/tmp"))
    try:
        os.chmod(shared, 0o755)  # noqa: S103 - the point: others may traverse the parent.
        db = shared / "state" / "hitlgate.db"
        Store.open(f"sqlite:///{db}").close()
        _assert_nobody_cannot_read(db)
    finally:
        shutil.rmtree(shared)


def _assert_nobody_cannot_read(db: Path) -> None:
    head = shutil.which("head")
    assert head is not None
    read = subprocess.run(  # noqa: S603 - a system tool, fixed argv.
        [head, "-c", "16", str(db)], user=65534, cwd="/", capture_output=True, text=True, check=False, timeout=30,
    )
    assert (read.returncode, read.stdout) == (1, "")
    assert "Permission denied" in read.stderr


def test_doctor_warns_about_a_world_readable_state_file(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    config = ["--config", str(proj / "hitlgate.yaml")]
    assert CliRunner().invoke(cli, [*config, "propose", "--json", str(proj / "proposal.json")]).exit_code == 4
    db = proj / "state" / "hitlgate.db"
    clean = json.loads(CliRunner().invoke(cli, [*config, "--json", "doctor"]).stdout)
    assert clean["warnings"] == []
    os.chmod(db, 0o644)
    report = json.loads(CliRunner().invoke(cli, [*config, "--json", "doctor"]).stdout)
    assert report["warnings"] == [
        f"state file {db} is accessible by group or others (mode 0644) and holds live warrant tokens; "
        f"run: chmod 600 {db}"
    ]


@pytest.mark.usefixtures("umask_022")
def test_state_file_is_never_readable_by_others_not_even_before_its_mode_is_fixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Race: a reader that opens the new file between its creation and the fchmod sees mode 0600 already."""
    seen: list[int] = []
    real_fchmod = os.fchmod

    def fchmod_after_looking(fd: int, mode: int) -> None:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fchmod(fd, mode)

    monkeypatch.setattr(os, "fchmod", fchmod_after_looking)
    db = tmp_path / "hitlgate.db"
    Store.open(f"sqlite:///{db}").close()
    assert seen == [0o600]
    assert _mode(db) == 0o600


def test_umask_that_takes_the_owner_write_bit_still_gives_a_0600_state_file(tmp_path: Path) -> None:
    old = os.umask(0o277)
    try:
        db = tmp_path / "hitlgate.db"
        store = Store.open(f"sqlite:///{db}")
        store.close()
    finally:
        os.umask(old)
    assert _mode(db) == 0o600


def test_link_planted_at_the_state_path_is_not_followed_to_create_a_file(tmp_path: Path) -> None:
    """Attack: a link to a missing file at the state path would make hitlgate create the file where it points."""
    target = tmp_path / "elsewhere" / "stolen.db"
    target.parent.mkdir()
    db = tmp_path / "hitlgate.db"
    db.symlink_to(target)
    with pytest.raises(StorageError,
                       match=r"is a symbolic link to a missing or unreachable file \(.*stolen\.db\)") as info:
        Store.open(f"sqlite:///{db}")
    assert info.value.code == "state_unwritable"
    assert not target.exists()
    # A link to an existing database is an operator's choice, and works.
    Store.open(f"sqlite:///{target}").close()
    Store.open(f"sqlite:///{db}").close()
    assert _mode(target) == 0o600


def test_state_directory_removed_before_the_file_is_created_is_a_storage_error(tmp_path: Path) -> None:
    gone = tmp_path / "gone" / "hitlgate.db"
    with pytest.raises(StorageError, match=r"cannot create the state store .*gone/hitlgate\.db: No such file") as info:
        _create_private_file(gone)
    assert info.value.code == "state_unwritable"


def test_state_path_with_a_nul_byte_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"^cannot open the state store .*: embedded null byte$") as info:
        Store.open(f"sqlite:///{tmp_path}/state\x00.db")
    assert info.value.code == "state_unreadable"


def test_state_path_the_file_system_refuses_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    db = tmp_path / ("a" * 300 + ".db")
    with pytest.raises(StorageError, match=r"cannot open the state store .*aaaa\.db: File name too long") as info:
        Store.open(f"sqlite:///{db}")
    assert info.value.code == "state_unreadable"


def test_a_state_directory_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    parent = blocker / "state"
    message = f"cannot create the state directory {parent}: Not a directory"
    with pytest.raises(StorageError, match="^" + re.escape(message) + "$") as info:
        Store.open(f"sqlite:///{parent / 'state.db'}")
    assert info.value.code == "state_unwritable"


def test_state_directories_made_for_the_store_are_private(tmp_path: Path) -> None:
    db = tmp_path / "var" / "lib" / "hitlgate" / "state.db"
    Store.open(f"sqlite:///{db}").close()
    assert _mode(db.parent) == 0o700 and _mode(db) == 0o600

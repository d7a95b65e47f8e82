"""Fault: a read-only or permission-denied state directory (an auditor's copy, a read-only mount).

Before the fix, every command failed with SQLite's "unable to open database
file" plus a SQLAlchemy background link, naming neither the path nor the
reason, and even reading commands failed on a read-only copy. Now reading
commands (``requests``, ``show``, ``audit verify``, ``audit export``) open a
store they may not write read-only, writing commands are refused naming the
path and why, and an inaccessible directory is named with its mode.

Root ignores file modes, so the permission cases run the real CLI as root
without the capabilities that override file modes (``setpriv`` drops
``CAP_DAC_OVERRIDE`` and ``CAP_DAC_READ_SEARCH``); the read-only filesystem
is a real read-only tmpfs mount. Both need root and are skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitlgate.engine.config import sqlite_url
from tests._cli_process import HITLGATE, cli_env
from tests._require import missing, require_root
from tests.workflow._helpers import everyone_may_enter, proposal
from tests.workflow._helpers import run_cli as _run

NOBODY = 65534
#: Run as root, but bound by file modes like any other user.
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def _config(path: Path, state: Path, keys: Path, anchor: Path | None = None) -> dict[str, str]:
    text = f"state: sqlite:///{state}\nkeys: {keys}\n" + (f"audit_anchor: {anchor}\n" if anchor else "")
    path.write_text(text)
    return {"HITLGATE_CONFIG": str(path), "HITLGATE_HOME": str(path.parent)}


@pytest.fixture
def world() -> Iterator[Path]:
    """A directory everybody may enter (tmp_path is private to root)."""
    require_root("to mount a read-only filesystem and to run the CLI as nobody")
    with everyone_may_enter("hitlgate-ro-") as base:
        try:
            yield base
        finally:
            subprocess.run(["umount", "-l", str(base / "ro")], capture_output=True, check=False, timeout=30)


def _make_store(base: Path) -> tuple[dict[str, str], str]:
    """A store with one pending request and an anchored checkpoint; return its env and the request id."""
    env = _config(base / "hitlgate.yaml", base / "state" / "state.db", base / "keys")
    prop = base / "p.json"
    prop.write_text(json.dumps(proposal("suspend_service_account", "svc-ci-runner")))
    prop.chmod(0o644)
    rid = json.loads(_run(env, "propose", str(prop), "--json", code=4).stdout)["id"]  # 4: pending approval
    _run(env, "audit", "checkpoint")
    return env, rid


def _read_only_copy(world: Path, name: str = "state.db") -> Path:
    """A directory on a real read-only tmpfs mount holding a copy of the store's state.db (as ``name``)."""
    ro = world / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(ro)], capture_output=True,
                             check=False, timeout=30)
    if mounted.returncode != 0:
        missing("a mountable tmpfs", f"mount -t tmpfs failed: {mounted.stderr.decode(errors='replace')}")
    shutil.copy2(world / "state" / "state.db", ro / name)
    subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True, capture_output=True, timeout=30)
    return ro


def test_reading_commands_work_on_a_read_only_filesystem(world: Path) -> None:
    _, rid = _make_store(world)
    ro = _read_only_copy(world)
    env = _config(world / "ro.yaml", ro / "state.db", world / "keys")
    assert rid in _run(env, "requests").output
    assert json.loads(_run(env, "show", rid, "--json").stdout)["status"] == "pending"
    assert "audit chain OK: 2 events, 1 signed checkpoint(s), 1 anchored" in _run(env, "audit", "verify").output
    assert len(_run(env, "audit", "export").stdout.splitlines()) == 3
    err = _run(env, "propose", str(world / "p.json"), code=1).output
    assert (f"the state store sqlite:///{ro / 'state.db'} is read-only: the file is not writable "
            "(it is on a read-only filesystem)") in err
    assert "sqlalche.me" not in err


@pytest.mark.parametrize("name", ["a#b.db", "c%41.db", "d?e.db", "f g.db"])
def test_a_read_only_copy_whose_name_needs_escaping_is_read_as_itself(world: Path, name: str) -> None:
    # The store reads a copy it may not write through a file: URI (mode=ro). Escaped once, the name reached
    # SQLite decoded: a#b.db opened a new file "a" without mode=ro, c%41.db opened cA.db.
    _, rid = _make_store(world)
    ro = _read_only_copy(world, name)
    env = _config(world / "ro.yaml", ro / name, world / "keys")
    (world / "ro.yaml").write_text(f'state: "{sqlite_url(ro / name)}"\nkeys: {world / "keys"}\n')
    assert rid in _run(env, "requests").output
    assert json.loads(_run(env, "show", rid, "--json").stdout)["status"] == "pending"
    assert sorted(p.name for p in ro.iterdir()) == [name]


def test_a_read_only_copy_named_with_a_leading_double_slash_is_read(world: Path) -> None:
    # sqlite://///abs/x.db (five slashes) names //abs/x.db (POSIX keeps a leading //): the file: URI must not read "abs"
    # as its authority.
    _, rid = _make_store(world)
    ro = _read_only_copy(world)
    env = _config(world / "ro.yaml", ro / "state.db", world / "keys")
    (world / "ro.yaml").write_text(f"state: sqlite:////{ro / 'state.db'}\nkeys: {world / 'keys'}\n")
    assert rid in _run(env, "requests").output


def _unprivileged(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("setpriv") is None:
        missing("setpriv", "install util-linux: it drops root's file-mode override")
    return subprocess.run([*UNPRIVILEGED, *HITLGATE, *args], env=cli_env({"PATH": os.environ.get("PATH", "")}, **env),
                          capture_output=True, text=True, timeout=120, check=False, cwd="/")


def test_auditors_read_only_copy(world: Path) -> None:
    env, rid = _make_store(world)
    jwks = world / "jwks.json"
    jwks.write_text(_run(env, "keys", "jwks", "--all").stdout)
    copy = world / "copy"
    copy.mkdir()
    shutil.copy2(world / "state" / "state.db", copy / "state.db")
    shutil.copy2(world / "keys" / "audit-anchor.jsonl", copy / "audit-anchor.jsonl")
    for f in (copy / "state.db", copy / "audit-anchor.jsonl", jwks):
        f.chmod(0o444)
    copy.chmod(0o555)
    auditor = _config(world / "auditor.yaml", copy / "state.db", world / "no-keys", copy / "audit-anchor.jsonl")
    (world / "auditor.yaml").chmod(0o644)
    listed = _unprivileged(auditor, "requests")
    assert listed.returncode == 0 and rid in listed.stdout, listed.stderr
    shown = _unprivileged(auditor, "show", rid, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == rid, shown.stderr
    verified = _unprivileged(auditor, "audit", "verify", "--jwks", str(jwks))
    assert verified.returncode == 0 and "audit chain OK: 2 events" in verified.stdout, verified.stderr
    exported = _unprivileged(auditor, "audit", "export")
    assert exported.returncode == 0 and len(exported.stdout.splitlines()) == 3, exported.stderr
    refused = _unprivileged(auditor, "propose", str(world / "p.json"))
    assert refused.returncode == 1
    assert (f"the state store sqlite:///{copy / 'state.db'} is read-only: the file is not writable (mode 0444, "
            "owner uid 0, you are uid 0)") in refused.stderr
    assert "Traceback" not in refused.stderr and "sqlalche.me" not in refused.stderr


def test_permission_denied_state_directory_is_named(world: Path) -> None:
    env, _ = _make_store(world)
    (world / "state").chmod(0o700)
    os.chown(world / "state", NOBODY, NOBODY)
    (world / "hitlgate.yaml").chmod(0o644)
    denied = _unprivileged(env, "requests")
    assert denied.returncode == 1
    state = world / "state"
    assert (f"cannot open the state store {state / 'state.db'}: its directory {state} cannot be entered "
            f"(permission denied: mode 0700, owner uid {NOBODY}, you are uid 0)") in denied.stderr
    assert "Traceback" not in denied.stderr and "sqlalche.me" not in denied.stderr


@pytest.mark.parametrize("older", ["last migration undone", "no migration recorded", "empty file"])
def test_read_only_store_at_an_old_schema_is_refused_not_migrated(world: Path, older: str) -> None:
    """A read-only copy of an older store cannot be migrated: opening it names the versions (in process)."""
    import sqlite3

    from hitlgate.engine.ledger import _store_schema as t
    from hitlgate.engine.ledger.store import Store
    from hitlgate.errors import StorageError

    _make_store(world)
    db = sqlite3.connect(world / "state" / "state.db")
    with db:  # An older hitlgate's store (or a database nobody migrated yet).
        if older == "last migration undone":
            db.execute("DELETE FROM schema_version WHERE version = ?", (t.LATEST_VERSION,))
        elif older == "no migration recorded":
            db.execute("DELETE FROM schema_version")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # Into the main file, which is what gets copied.
    db.close()
    if older == "empty file":
        (world / "state" / "state.db").write_bytes(b"")
    version = t.LATEST_VERSION - 1 if older == "last migration undone" else 0
    ro = _read_only_copy(world)
    url = f"sqlite:///{ro / 'state.db'}"
    with pytest.raises(StorageError, match=(
            f"^the state store {url} is read-only \\(the file is not writable \\(it is on a read-only filesystem\\)\\) "
            f"and at schema version {version}, but this hitlgate needs version {t.LATEST_VERSION}; "
            "open it writable once to migrate it$")) as exc:
        Store.open(url)
    assert exc.value.code == "read_only"

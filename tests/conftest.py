"""Shared fixtures: the bundled example pack, temp copies of it, proposals."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from hitlgate.engine import Config, Decider
from hitlgate.engine._resources import bundled_data_dir, bundled_policy_dir
from hitlgate.engine.decide._bundle import write_bundle
from hitlgate.engine.decide.policy import PolicyPack
from hitlgate.engine.ledger.store import Store
from tests._pgcluster import PgCluster, PgStartError, pg_bindir, running_cluster
from tests._require import missing, require_root
from tests.opa.conftest import INSTALL_OPA, OpaServer

# In CI and in mutation runs, generated cases are derandomized: the same
# examples every run, so a red build is reproducible and never depends on
# luck. Nor on the machine's load: a loaded 2-core CI host (or mutmut's call
# tracking) made input generation trip hypothesis's "too slow" health check
# and its per-example deadline, which test the machine, not the code.
# Locally, hypothesis explores new examples each run, with both checks on.
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
if os.environ.get("CI") or os.environ.get("HITLGATE_MUTATION_RUN"):
    settings.load_profile("ci")


def make_proposal(
    action_type: str = "rotate_api_key", target: str = "svc-payments-key", **extra: Any
) -> dict[str, Any]:
    """A valid proposal document with overridable parts."""
    doc: dict[str, Any] = {
        "action": {"type": action_type, "target": target, "parameters": {}},
        "requester": {"id": "soc-agent-7", "kind": "agent"},
        "justification": "test",
    }
    doc.update(extra)
    return doc


@pytest.fixture
def proposal() -> Callable[..., dict[str, Any]]:
    """Factory for valid proposal documents."""
    return make_proposal


@pytest.fixture
def as_root() -> None:
    """The test acts as root (plants another user's files, switches user): a failure under CI, skipped elsewhere."""
    require_root("(it creates files owned by another user or runs a command as one)")


@pytest.fixture
def pack_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled policy pack (policies/ with data/ and scenarios/)."""
    dst = tmp_path / "policies"
    shutil.copytree(bundled_policy_dir(), dst, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    return dst


@pytest.fixture
def pack_config(pack_copy: Path, tmp_path: Path) -> Config:
    """A Config on the writable pack copy, with state and keys in tmp_path."""
    return Config(
        policy_dir=pack_copy,
        data_paths=(pack_copy / "data",),
        scenario_dir=pack_copy / "scenarios",
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        key_dir=tmp_path / "keys",
    )


def pytest_configure(config: pytest.Config) -> None:
    """A SIGTERM ends the run like Ctrl-C: fixtures are torn down and their servers stopped.

    By default SIGTERM kills a process outright, which left each xdist
    worker's PostgreSQL cluster and OPA server running (``scripts/test``,
    ``timeout`` or a CI runner stopping the run send SIGTERM). As a
    KeyboardInterrupt, pytest finishes the session, which tears every
    fixture down.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


#: What the session fixtures below build once per process, kept across pytest sessions. A plain
#: run has one session per process, so this changes nothing there; a mutation run (mutmut) forks
#: each mutant's ``pytest.main`` from one parent process that already ran the tests, and
#: rebuilding these for every mutant was about 0.26 s of a typical mutant's 0.4 s. Neither is
#: code mutmut mutates, and a forked child's changes stay in that child.
_per_process: dict[str, Any] = {}


@pytest.fixture(scope="session")
def example_decider() -> Decider:
    """A decider on the bundled example pack, embedded backend."""
    if "example_decider" not in _per_process:
        _per_process["example_decider"] = Decider.from_config(Config())
    decider: Decider = _per_process["example_decider"]
    return decider


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a real Chromium for browser tests (missing: skipped locally, a failure in CI)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    missing("a browser (Chromium)", "install the Debian package chromium; browser tests drive it with Playwright")


# -- the session's real components -------------------------------------------
#
# One of each per test process (per xdist worker): every directory's tests
# share them. They are defined here, in the root conftest, and nowhere else:
# a fixture imported into another conftest or test module is a second
# definition with a cache of its own, which started a second PostgreSQL
# cluster (and OPA server, and compiled pack) for each importing directory.


@pytest.fixture(scope="session")
def bundled_decider(example_decider: Decider) -> Decider:
    """A decider on the bundled example pack (compiled once per session): :func:`example_decider`."""
    return example_decider


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """Start a PostgreSQL cluster for the session (missing PostgreSQL: skip locally, fail in CI)."""
    bindir = pg_bindir()
    if bindir is None:
        missing("PostgreSQL (initdb and pg_ctl)", "run scripts/install-postgres")
    try:
        with running_cluster(bindir) as cluster:
            yield cluster
    except PgStartError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def pg_schema_template(pg_cluster: PgCluster) -> str:
    """A database on :func:`pg_cluster` that holds the store's current schema and nothing else.

    Fresh test databases are copied from it (``CREATE DATABASE ... TEMPLATE``):
    creating the schema on each took about 0.25 s, a fifth of a PostgreSQL
    test. Creating it from nothing is tested on its own (``empty_db_url``).
    """
    name = f"schema_{os.getpid()}"
    store = Store.open(pg_cluster.new_database(name))
    store.close()  # A template must have no open connections when it is copied.
    return name


@pytest.fixture(scope="session")
def sqlite_schema_file() -> Path:
    """A SQLite state file that holds the store's current schema and nothing else (mode 0600).

    Fresh test databases are copies of it (about 8 ms instead of 75-190 ms
    for creating the schema); creating it from nothing is tested on its own
    (``empty_db_url``). Built once per process (``_per_process``), in a
    directory of its own that is removed when the process exits: pytest's
    own temporary directories of earlier sessions may be cleaned up.
    """
    if "sqlite_schema_file" not in _per_process:
        directory = Path(tempfile.mkdtemp(prefix="hitlgate-schema-"))
        atexit.register(shutil.rmtree, directory, True)
        path = directory / "state.db"
        store = Store.open(f"sqlite:///{path}")
        store.close()  # The last connection closed: the WAL is checkpointed into the file and removed.
        assert not Path(f"{path}-wal").exists(), "the schema template's WAL was not checkpointed"
        _per_process["sqlite_schema_file"] = path
    path = _per_process["sqlite_schema_file"]
    assert isinstance(path, Path)
    return path


@pytest.fixture(scope="session")
def opa_bin() -> Path:
    """Path of the real OPA binary, installed by scripts/install-opa when missing."""
    result = subprocess.run([str(INSTALL_OPA)], capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        pytest.fail(f"OPA is missing: scripts/install-opa failed (exit {result.returncode}):\n{result.stderr}",
                    pytrace=False)
    path = Path(result.stdout.strip())
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"OPA is missing: scripts/install-opa printed {path!r}, which is not an executable",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def bundled_pack() -> PolicyPack:
    """The bundled example pack (policies/ and policies/data/)."""
    return PolicyPack.load(bundled_policy_dir(), [bundled_data_dir()])


@pytest.fixture(scope="session")
def bundle_file(bundled_pack: PolicyPack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle of the bundled pack, in a directory of its own."""
    return write_bundle(bundled_pack, tmp_path_factory.mktemp("bundle") / "hitlgate.tar.gz")


@pytest.fixture(scope="session")
def opa_server(opa_bin: Path, bundle_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaServer]:
    """One OPA server for the session, serving the bundled pack. Do not change what it serves."""
    server = OpaServer(opa_bin, bundle_file, tmp_path_factory.mktemp("opa-logs")).start()
    yield server
    server.stop()

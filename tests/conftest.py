"""Shared fixtures: the bundled example pack, temp copies of it, proposals."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from hitlgate.engine import Config, Decider
from hitlgate.engine._resources import bundled_data_dir, bundled_policy_dir
from hitlgate.engine.decide._bundle import write_bundle
from hitlgate.engine.decide.policy import PolicyPack
from hitlgate.engine.ledger.store import Store
from tests._pgcluster import PgCluster, PgStartError, pg_bindir, running_cluster
from tests._require import missing
from tests.opa.conftest import INSTALL_OPA, OpaServer

# In CI, generated cases are derandomized: the same examples every run, so a
# red build is reproducible and never depends on luck. Locally, hypothesis
# explores new examples each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
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


@pytest.fixture(scope="session")
def example_decider() -> Decider:
    """A decider on the bundled example pack, embedded backend."""
    return Decider.from_config(Config())


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
def sqlite_schema_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite state file that holds the store's current schema and nothing else (mode 0600).

    Fresh test databases are copies of it (about 8 ms instead of 75-190 ms
    for creating the schema); creating it from nothing is tested on its own
    (``empty_db_url``).
    """
    path = tmp_path_factory.mktemp("schema") / "state.db"
    store = Store.open(f"sqlite:///{path}")
    store.close()  # The last connection closed: the WAL is checkpointed into the file and removed.
    assert not Path(f"{path}-wal").exists(), "the schema template's WAL was not checkpointed"
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

"""Fixtures for the workflow tests: real SQLite files and a real, throwaway PostgreSQL.

Every store-backed test runs twice, on SQLite and on PostgreSQL, through
the parametrized ``db_url`` fixture; nothing mocks the database. The
PostgreSQL cluster is created once per session by
:func:`tests._pgcluster.running_cluster` (``initdb`` in a temporary
directory, stopped and deleted at the end).
When no PostgreSQL binaries (``initdb``, ``pg_ctl``) are installed
(``scripts/install-postgres``), the PostgreSQL variants are skipped with that
hint on a developer's machine and *fail* in CI (``CI`` set): see
:mod:`tests._require`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine import Config, Decider
from hitlgate.engine.approve.workflow import Engine
from tests._pgcluster import PgCluster
from tests.workflow._helpers import FakeClock, proposal

# -- PostgreSQL ------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database holding the store's current schema and no rows: a SQLite file, or a database
    on the throwaway PostgreSQL. Both are copies of a per-worker template (``sqlite_schema_file``,
    ``pg_schema_template``), made once; ``empty_db_url`` is a database without even the schema."""
    if request.param == "sqlite":
        path = tmp_path / "state.db"
        shutil.copy2(request.getfixturevalue("sqlite_schema_file"), path)  # keeps its mode, 0600
        return f"sqlite:///{path}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database(template=request.getfixturevalue("pg_schema_template"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no schema): a SQLite file not yet created, or a new database on the throwaway PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database()


# -- engines ---------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    """A hand-moved clock starting at :data:`T0`."""
    return FakeClock()


EngineFactory = Callable[..., Engine]


@pytest.fixture
def make_engine(db_url: str, tmp_path: Path, clock: FakeClock, bundled_decider: Decider) -> Iterator[EngineFactory]:
    """Build engines on the test database; ``pack=`` a pack copy to use it instead of the bundled pack."""
    engines: list[Engine] = []

    def factory(pack: Path | None = None, **kwargs: Any) -> Engine:
        cfg_kwargs: dict[str, Any] = {"state_url": db_url, "key_dir": tmp_path / "keys"}
        decider = kwargs.pop("decider", bundled_decider)
        if pack is not None:
            cfg_kwargs.update(policy_dir=pack, data_paths=(pack / "data",), scenario_dir=pack / "scenarios")
        cfg_kwargs.update(kwargs.pop("config", {}))
        config = Config(**cfg_kwargs)
        if pack is not None:
            decider = Decider.from_config(config)
        # The workflow tests sign with the example inventory's demo keys,
        # which only an engine in demo mode accepts (test_demo_keys_refused.py
        # covers the refusal).
        kwargs.setdefault("demo", True)
        eng = Engine(config, decider, clock=kwargs.pop("clock", clock), **kwargs)
        engines.append(eng)
        return eng

    yield factory
    for eng in engines:
        eng.store.close()


@pytest.fixture
def five_checkpoints(make_engine: EngineFactory) -> Engine:
    """An engine whose chain is five proposals, each followed by a checkpoint: events 1-10, checkpoints 2-10."""
    engine = make_engine()
    for _ in range(5):
        engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
        engine.checkpoint()
    assert [e.seq for e in engine.audit_events()] == list(range(1, 11))
    return engine


# -- the policy backend ------------------------------------------------------
#
# The guard and workflow tests that take ``engine`` run on both Rego
# backends: the embedded one, and a real OPA server over HTTP (one server
# per session, serving the bundled pack). The OPA variant runs on SQLite
# only: what it adds is the backend, and the database variants do not
# depend on it. Tests that build engines on an edited pack copy
# (``make_engine(pack=...)``) stay embedded, since they change policy files
# on disk, which the embedded backend reloads and a bundle-serving OPA does not.



@pytest.fixture(scope="session")
def opa_decider(request: pytest.FixtureRequest) -> Iterator[Decider]:
    """A decider on the real OPA server serving the bundled pack."""
    from hitlgate.engine.decide._opa import OpaBackend

    server = request.getfixturevalue("opa_server")
    pack = request.getfixturevalue("bundled_pack")
    decider = Decider(OpaBackend(server.url, pack=pack, timeout_ms=5000))
    yield decider
    decider.close()


@pytest.fixture(params=["embedded", pytest.param("opa", marks=pytest.mark.opa)])
def backend(request: pytest.FixtureRequest) -> str:
    """Which Rego backend the ``engine`` fixture decides with."""
    return str(request.param)


@pytest.fixture
def engine(make_engine: EngineFactory, backend: str, request: pytest.FixtureRequest) -> Engine:
    """An engine on the bundled pack and the test database, on each policy backend."""
    if backend == "opa":
        return make_engine(decider=request.getfixturevalue("opa_decider"))
    return make_engine()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the PostgreSQL x OPA combination (see above): OPA runs on SQLite only."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        (drop if params.get("db_url") == "postgres" and params.get("backend") == "opa" else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep

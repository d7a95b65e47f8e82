"""A pooled PostgreSQL connection the server closed while it sat idle is replaced before use.

The store's pool pings a connection only after it was idle for
``PING_AFTER_IDLE_S`` (a ping on every checkout is one more round trip per
transaction). The case the ping exists for, the server restarting or a
proxy dropping connections while the pool sleeps, must still cost nothing:
the next request finds its connection dead at checkout and gets a new one.
A connection killed mid-burst (not idle long enough to be pinged) fails the
one transaction that meets it, then the pool is rebuilt. Real PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from hitlgate.engine import Config, Decider
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import store as store_module
from hitlgate.errors import StorageError
from tests._pgcluster import PgCluster
from tests.workflow._helpers import proposal

pytestmark = pytest.mark.postgres


def _kill_other_connections(cluster: PgCluster, url: str) -> int:
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(cluster.admin_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return len(rows)


def _engine(url: str, tmp_path: Path, decider: Decider) -> Engine:
    return Engine(Config(state_url=url, key_dir=tmp_path / "keys"), decider, demo=True)


def test_connection_killed_while_idle_is_replaced_before_use(
    pg_cluster: PgCluster, tmp_path: Path, bundled_decider: Decider, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_cluster.new_database()
    engine = _engine(url, tmp_path, bundled_decider)
    try:
        engine.propose(proposal(n=1))
        assert _kill_other_connections(pg_cluster, url) >= 1
        # Every pooled connection now counts as idle long enough to be pinged.
        monkeypatch.setattr(store_module, "PING_AFTER_IDLE_S", 0.0)
        req = engine.propose(proposal(n=2))
        assert engine.get(req.id).status == "pending"
    finally:
        engine.store.close()


def test_connection_killed_mid_burst_fails_one_transaction_then_recovers(
    pg_cluster: PgCluster, tmp_path: Path, bundled_decider: Decider, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_cluster.new_database()
    monkeypatch.setattr(store_module, "PING_AFTER_IDLE_S", 3600.0)
    engine = _engine(url, tmp_path, bundled_decider)
    try:
        engine.propose(proposal(n=1))
        assert _kill_other_connections(pg_cluster, url) >= 1
        # The server's own words when the statement is sent alone; when it goes in a pipeline with others
        # (a write's first round trip, Store.write), libpq reports the closed connection it finds instead.
        with pytest.raises(StorageError, match="terminating connection due to administrator command"
                           "|server closed the connection unexpectedly"):
            engine.propose(proposal(n=2))
        req = engine.propose(proposal(n=3))
        assert [r.id for r in engine.list()][0] == req.id
    finally:
        engine.store.close()

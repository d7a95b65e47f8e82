"""Two replicas opening a new PostgreSQL store at once: one migrates, the other waits for it.

Store.migrate takes a transaction-scoped advisory lock (724011) before it looks at the schema, so two
replicas starting together never both create the tables (the loser would fail on a duplicate table and
not start). The test holds that lock itself, so the race is forced rather than hoped for: an opener
that did not take the lock would migrate at once instead of waiting.
"""

from __future__ import annotations

import psycopg
import pytest

from hitlgate.engine.ledger import _store_schema as t
from tests._pgcluster import PgCluster
from tests.workflow._helpers import BackgroundOpen

pytestmark = pytest.mark.postgres


def test_a_new_postgresql_store_waits_for_a_migration_in_progress_elsewhere(pg_cluster: PgCluster) -> None:
    empty_db_url = pg_cluster.new_database()
    dsn = empty_db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(724011)")  # Another replica is migrating.
        opener = BackgroundOpen(empty_db_url)
        opener.assert_waiting(1.0)  # Waiting for the lock, not migrating beside the other replica.
        tables = holder.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'schema_version'").fetchone()
        assert tables == (0,)
        holder.execute("SELECT pg_advisory_unlock(724011)")
        store = opener.store()
    try:
        assert store.schema_version() == t.LATEST_VERSION
    finally:
        store.close()

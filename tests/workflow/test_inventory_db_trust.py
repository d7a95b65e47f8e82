"""Who may change the inventory when it lives in the database (``inventory: {source: database}``).

Whoever can write the inventory tables decides the risk facts and the
approvers' keys, as whoever can write the policy files does for the files
source: the engine cannot tell a CMDB sync from an intruder. So the README
tells operators to run the deciding service with a PostgreSQL role that may
only read those tables, and ``doctor`` warns while the configured
credentials may write them. These tests show that a read-only role is
enough for every step of a flow, that such a role cannot change an
approver's key, and that ``doctor`` tells the two apart.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine import Config, Decider
from hitlgate.engine._resources import bundled_data_dir
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.decide._doctor import diagnose
from hitlgate.engine.decide.inventory import encode_public_key
from hitlgate.engine.decide.inventory_db import InventoryDB
from hitlgate.engine.keys.keyring import public_raw
from hitlgate.errors import StorageError
from tests._pgcluster import PgCluster
from tests.workflow._helpers import FakeClock, proposal, signed

pytestmark = pytest.mark.postgres

INVENTORY_TABLES = ["inventory_records", "inventory_refs", "inventory_meta"]


@pytest.fixture
def urls(pg_cluster: PgCluster, pg_schema_template: str) -> tuple[str, str]:
    """(owner URL, URL of a role that may read the inventory tables and write every other table)."""
    owner = pg_cluster.new_database(template=pg_schema_template)
    db = InventoryDB.open(owner)
    db.import_files([bundled_data_dir()])
    db.close()
    role = f"svc_{uuid.uuid4().hex[:10]}"
    name = owner.rsplit("/", 1)[1]
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/{name}", autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}")
        conn.execute(f"REVOKE INSERT, UPDATE, DELETE ON {', '.join(INVENTORY_TABLES)} FROM {role}")
    return owner, owner.replace("postgres@", f"{role}@", 1)


def test_a_service_whose_role_only_reads_the_inventory_runs_whole_flows(urls: tuple[str, str], tmp_path: Path) -> None:
    _, service = urls
    config = Config(state_url=service, key_dir=tmp_path / "keys", inventory_source="database")
    decider = Decider.from_config(config)
    engine = Engine(config, decider, clock=FakeClock(), demo=True)
    try:
        req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
        assert req.status == "pending"
        engine.approve(signed(req, "carol"))
        token = engine.warrant(req.id).token
        ran: list[dict[str, object]] = []
        engine.guard().execute(token, req.action, ran.append)
        assert ran == [dict(req.action)]
        engine.verify_audit()
    finally:
        engine.close()
        decider.close()


def test_that_role_cannot_put_its_own_key_on_an_approver(urls: tuple[str, str]) -> None:
    owner, service = urls
    mine = encode_public_key(public_raw(Ed25519PrivateKey.generate().public_key()))
    db = InventoryDB.open(service)
    try:
        record, _ = db.get("approvers", "carol")
        with pytest.raises(StorageError, match="permission denied"):
            db.put("approvers", "carol", {**record, "public_key": mine})
    finally:
        db.close()
    check = InventoryDB.open(owner)
    try:
        assert check.get("approvers", "carol")[0]["public_key"] == record["public_key"] != mine
    finally:
        check.close()


def test_doctor_warns_while_the_credentials_may_write_the_inventory(urls: tuple[str, str], tmp_path: Path) -> None:
    owner, service = urls

    def warnings(url: str) -> list[str]:
        config = Config(state_url=url, key_dir=tmp_path / "keys", inventory_source="database")
        return [w for w in diagnose(config).warnings if "inventory tables" in w]

    (warning,) = warnings(owner)
    assert all(name in warning for name in INVENTORY_TABLES)
    assert "approver's key" in warning and "SELECT" in warning
    assert warnings(service) == []

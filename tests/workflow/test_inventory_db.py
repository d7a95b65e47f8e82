"""The inventory in the database: all-or-nothing imports, dangling references, the change feed, the revision.

Every test runs on SQLite and on the throwaway PostgreSQL (``db_url``).
A second :class:`InventoryDB` on the same URL plays the "database writer"
(another process: a CMDB sync job, an operator with ``hitlgate inventory``).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from hitlgate.engine._resources import bundled_data_dir
from hitlgate.engine.decide.inventory_db import DatabaseFacts, InventoryDB, chain, record_text
from hitlgate.engine.ledger._store_schema import INVENTORY_GENESIS
from hitlgate.errors import BackendUnavailable, NotFoundError, PolicyError, StorageError, ValidationError

CAROL_KEY = "ed25519:eWl-vHaqhaH-HrBEbUfM7VlRAAv4eWtJg1dA2nsVEo8"


@pytest.fixture
def db(db_url: str) -> Iterator[InventoryDB]:
    inv = InventoryDB.open(db_url)
    inv.import_files([bundled_data_dir()])
    yield inv
    inv.close()


@pytest.fixture
def writer(db: InventoryDB, db_url: str) -> Iterator[InventoryDB]:
    """Another connection pool on the same database: a separate writer."""
    other = InventoryDB.open(db_url)
    yield other
    other.close()


def _identity(**over: object) -> dict[str, object]:
    rec: dict[str, object] = {
        "kind": "api_key", "environment": "production", "owner": "team-platform", "privilege": "low", "used_by": [],
    }
    rec.update(over)
    return rec


def test_bad_import_leaves_the_previous_inventory_intact(db: InventoryDB, tmp_path: Path) -> None:
    before = db.document()
    good = tmp_path / "a.yaml"
    good.write_text("teams:\n  only-team: {name: Only}\n")
    bad = tmp_path / "b.yaml"
    bad.write_text(
        "identities:\n  k1: {kind: api_key, environment: production, owner: no-such-team, privilege: low, "
        "used_by: []}\n"
    )
    with pytest.raises(ValidationError, match=r"identities\.k1\.owner: unknown team 'no-such-team'"):
        db.import_files([good, bad])
    assert db.document() == before


def test_import_of_a_jsonl_export(db: InventoryDB, tmp_path: Path) -> None:
    export = tmp_path / "cmdb.jsonl"
    export.write_text(
        '{"section": "teams", "id": "t1", "record": {"name": "One"}}\n\n'
        '{"section": "identities", "id": "k1", "record": {"kind": "api_key", "environment": "production", '
        '"owner": "t1", "privilege": "low", "used_by": []}}\n'
        '{"section": "protected", "id": "k1"}\n'
    )
    result = db.import_files([export])
    assert result.added == 3
    assert db.get("identities", "k1")[0]["owner"] == "t1"
    assert db.get("protected", "k1")[0] is True


def test_import_of_a_malformed_jsonl_line_names_file_and_line(db: InventoryDB, tmp_path: Path) -> None:
    before = db.head()
    bad = tmp_path / "cmdb.jsonl"
    bad.write_text('{"section": "teams", "id": "t1", "record": {}}\nnot json\n')
    with pytest.raises(ValidationError, match=r"cmdb\.jsonl:2"):
        db.import_files([bad])
    assert db.head() == before


def test_reimport_writes_only_what_changed(db: InventoryDB, tmp_path: Path) -> None:
    version, revision = db.head()
    again = db.import_files([bundled_data_dir()])
    assert (again.version, again.revision, again.added, again.changed, again.deleted) == (version, revision, 0, 0, 0)
    smaller = tmp_path / "inv.yaml"
    smaller.write_text("teams:\n  t: {name: T}\nworkloads:\n  w: {environment: staging, owner: t, "
                       "customer_facing: false}\n")
    result = db.import_files([smaller])
    assert result.added == 2 and result.deleted == again.unchanged
    assert db.status().counts == {
        "teams": 1, "workloads": 1, "partners": 0, "identities": 0, "approvers": 0, "protected": 0,
    }


def test_delete_of_a_referenced_team_is_refused_naming_the_field(db: InventoryDB) -> None:
    before = db.head()
    owner = r"identities\.svc-ci-runner\.owner: still refers to teams\.team-platform"
    with pytest.raises(ValidationError, match=owner):
        db.delete("teams", "team-platform")
    with pytest.raises(ValidationError, match=r"approvers\.carol\.teams\[0\]: still refers to teams\.team-platform"):
        db.delete("teams", "team-platform")
    assert db.head() == before


def test_delete_of_a_used_workload_is_refused_naming_the_field(db: InventoryDB) -> None:
    with pytest.raises(
        ValidationError, match=r"identities\.svc-ci-runner\.used_by\[0\]: still refers to workloads\.build-pipeline"
    ):
        db.delete("workloads", "build-pipeline")


def test_delete_after_the_last_reference_is_gone(db: InventoryDB) -> None:
    db.put("teams", "team-new", {"name": "New"})
    db.put("identities", "k-new", _identity(owner="team-new"))
    with pytest.raises(ValidationError, match=r"identities\.k-new\.owner: still refers to teams\.team-new"):
        db.delete("teams", "team-new")
    db.put("identities", "k-new", _identity(owner="team-platform"))
    db.delete("teams", "team-new")
    with pytest.raises(NotFoundError, match="no teams record 'team-new'"):
        db.get("teams", "team-new")


def test_put_with_dangling_references_is_refused_naming_each_field(db: InventoryDB) -> None:
    before = db.head()
    with pytest.raises(ValidationError, match=r"(?s)identities\.k1\.used_by\[1\]: unknown workload 'ghost'.*"
                                              r"identities\.k1\.partner: unknown partner 'nobody'"):
        db.put("identities", "k1", _identity(used_by=["build-pipeline", "ghost"], partner="nobody"))
    assert db.head() == before


def test_put_refuses_an_identity_named_like_a_workload(db: InventoryDB) -> None:
    with pytest.raises(ValidationError, match="build-pipeline: defined both as an identity and as a workload"):
        db.put("identities", "build-pipeline", _identity())


def test_put_refuses_a_record_the_schema_refuses(db: InventoryDB) -> None:
    with pytest.raises(ValidationError, match=r"identities\.k1\.privilege: 'root' is not one of"):
        db.put("identities", "k1", _identity(privilege="root"))
    extra = r"identities\.k1: Additional properties are not allowed \('sneaky' was unexpected\)"
    with pytest.raises(ValidationError, match=extra):
        db.put("identities", "k1", _identity(sneaky=True))


def test_one_key_registered_under_a_second_name_is_refused(db: InventoryDB) -> None:
    # Same 32 bytes as carol's key in another of its four base64url spellings.
    other_spelling = CAROL_KEY[:-1] + "9"
    for key in (CAROL_KEY, other_spelling):
        with pytest.raises(ValidationError, match="the same key is already registered for carol"):
            db.put("approvers", "mallory", {"roles": ["security"], "teams": [], "public_key": key})
    # Carol may keep (re-put) her own key.
    db.put("approvers", "carol", {"roles": ["security"], "teams": ["team-platform"], "public_key": CAROL_KEY})


def test_revision_is_a_chain_over_the_changes(db_url: str, tmp_path: Path) -> None:
    inv = InventoryDB.open(db_url)
    try:
        assert inv.head() == (0, INVENTORY_GENESIS)
        inv.put("teams", "t1", {"name": "One"})
        inv.put("protected", "k9", True)
        inv.delete("teams", "t1")
        expected = chain(INVENTORY_GENESIS, 1, "teams", "t1", record_text({"name": "One"}))
        expected = chain(expected, 2, "protected", "k9", "true")
        expected = chain(expected, 3, "teams", "t1", None)
        assert inv.head() == (3, expected)
    finally:
        inv.close()


def test_same_import_into_two_databases_gives_the_same_revision(db: InventoryDB, tmp_path: Path) -> None:
    other = InventoryDB.open(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        assert other.import_files([bundled_data_dir()]).revision == db.head()[1]
    finally:
        other.close()


def test_changes_since_lists_each_change_once_with_deletes(db: InventoryDB) -> None:
    version, _ = db.head()
    db.put("teams", "t1", {"name": "One"})
    db.put("teams", "t1", {"name": "Uno"})
    db.put("protected", "svc-ci-runner", True)
    db.put("teams", "t2", {"name": "Two"})
    db.delete("teams", "t2")
    changes, head, revision = db.changes_since(version)
    assert changes == [("teams", "t1", {"name": "Uno"}), ("protected", "svc-ci-runner", True), ("teams", "t2", None)]
    assert (head, revision) == db.head()
    assert db.changes_since(head)[0] == []


def test_change_feed_reads_through_the_version_index(db: InventoryDB) -> None:
    engine = db.store.engine
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = " ".join(
                str(r[-1]) for r in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN SELECT section, id, record FROM inventory_records "
                    "WHERE version > 5 ORDER BY version"
                )
            )
            assert "ix_inventory_records_version" in plan, plan
            assert "SCAN inventory_records" not in plan.replace("USING INDEX", "")
        else:
            # The table is tiny, so the planner would rightly scan it; forbid
            # that to show the index answers the query.
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(str(r[0]) for r in conn.execute(sa.text(
                "EXPLAIN SELECT section, id, record FROM inventory_records WHERE version > 5 ORDER BY version"
            )))
            assert "ix_inventory_records_version" in plan, plan


def test_a_writer_edit_reaches_the_poller_within_a_second(db: InventoryDB, writer: InventoryDB) -> None:
    facts = DatabaseFacts(InventoryDB(db.store))
    first = facts.current()
    old_revision = first.revision
    assert first.neighbourhood("svc-ci-runner")["identities"]["svc-ci-runner"]["privilege"] == "high"
    rec, _ = writer.get("identities", "svc-ci-runner")
    written = writer.put("identities", "svc-ci-runner", {**rec, "privilege": "admin"})
    start = time.monotonic()
    while True:
        index = facts.current()
        if index.neighbourhood("svc-ci-runner")["identities"]["svc-ci-runner"]["privilege"] == "admin":
            break
        assert time.monotonic() - start < 1.0, "the change did not reach the index within 1 s"
        time.sleep(0.02)
    # Applied in place: the same index object, now at the revision of the
    # records it holds, the one a fresh load of the database computes.
    assert index is first
    assert index.revision == writer.content_revision() != old_revision
    assert facts.version == written.version


def test_facts_dropped_without_close_stop_their_poller_at_once(db: InventoryDB) -> None:
    # A long interval: the thread must not wait for its next wake-up to notice nobody holds the facts.
    facts = DatabaseFacts(InventoryDB(db.store), poll_interval=30)
    thread = facts._thread
    assert thread is not None and thread.is_alive()
    del facts
    gc.collect()
    thread.join(timeout=2)
    assert not thread.is_alive()
    # The store it read is still the caller's, open and usable.
    assert db.get("identities", "svc-ci-runner")[0]["privilege"] == "high"


def test_a_deleted_record_leaves_the_index(db: InventoryDB, writer: InventoryDB) -> None:
    facts = DatabaseFacts(InventoryDB(db.store), poll_interval=0)
    assert facts.current().record("identities", "dev-analytics-key") is not None
    writer.delete("identities", "dev-analytics-key")
    writer.put("protected", "dev-analytics-key", True)
    index = facts.current()
    assert index.record("identities", "dev-analytics-key") is None
    assert index.neighbourhood("dev-analytics-key")["protected"] == ["dev-analytics-key"]


def test_a_never_imported_inventory_is_a_broken_pack(db_url: str) -> None:
    facts = DatabaseFacts.open(db_url, poll_interval=0)
    try:
        with pytest.raises(PolicyError, match="is empty: nothing was ever imported"):
            facts.current()
    finally:
        facts.close()


def test_an_unreadable_database_fails_closed(db: InventoryDB, db_url: str) -> None:
    facts = DatabaseFacts(InventoryDB(db.store), poll_interval=0)
    facts.current()
    with db.store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE inventory_meta"))
    with pytest.raises(BackendUnavailable, match="cannot read the inventory from the database"):
        facts.current()


def test_concurrent_writers_get_distinct_versions_in_commit_order(db: InventoryDB, db_url: str) -> None:
    import threading

    base, _ = db.head()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        own = InventoryDB.open(db_url)
        try:
            for i in range(8):
                own.put("teams", f"t-{n}-{i}", {"name": f"team {n} {i}"})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below.
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=write, args=(n,), daemon=True) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads), "a writer hung"
    assert errors == []
    head, _ = db.head()
    assert head == base + 32
    changes, _, _ = db.changes_since(base)
    assert sorted(key for _, key, _ in changes) == sorted(f"t-{n}-{i}" for n in range(4) for i in range(8))
    # Every write committed whole: the last one of the last writer is there as written.
    assert db.document()[0]["teams"]["t-3-7"] == {"name": "team 3 7"}


def _fail_refs_insert_of(db: InventoryDB, key: str) -> None:
    """A real database fault in the middle of an import: a trigger refuses one row of the references table."""
    with db.store.engine.begin() as conn:
        if db.store.dialect == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER boom BEFORE INSERT ON inventory_refs WHEN NEW.id = '{key}' "
                "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.id = '{key}' THEN RAISE EXCEPTION 'disk on fire'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON inventory_refs FOR EACH ROW EXECUTE FUNCTION boom()"
            )


def test_a_database_fault_mid_import_writes_nothing(db: InventoryDB, tmp_path: Path) -> None:
    before_head, before_doc = db.head(), db.document()
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        "teams:\n  t1: {name: One}\n"
        "identities:\n"
        "  k-first: {kind: api_key, environment: production, owner: t1, privilege: low, used_by: []}\n"
        "  k-boom: {kind: api_key, environment: production, owner: t1, privilege: low, used_by: []}\n"
    )
    _fail_refs_insert_of(db, "k-boom")
    with pytest.raises(StorageError, match="disk on fire"):
        db.import_files([inventory])
    assert db.head() == before_head
    assert db.document() == before_doc


# PostgreSQL only: SQLite readers in WAL mode are never blocked by a writer,
# so only PostgreSQL can show the hang.
@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_database_that_hangs_fails_closed_after_a_while(db: InventoryDB, db_url: str) -> None:
    now = [1000.0]
    facts = DatabaseFacts(InventoryDB(db.store), poll_interval=0.05, monotonic=lambda: now[0])
    try:
        facts.current()
        locker = db.store.engine.connect()
        tx = locker.begin()
        # Every poll now blocks on the meta table, as on a database that stopped answering.
        locker.exec_driver_sql("LOCK TABLE inventory_meta IN ACCESS EXCLUSIVE MODE")
        time.sleep(0.2)
        now[0] += 4.0
        facts.current()  # Not yet stale: recent enough to decide on.
        now[0] += 2.0
        with pytest.raises(BackendUnavailable, match=r"last read from the database 6\.\d s ago"):
            facts.current()
        tx.rollback()
        locker.close()
        deadline = time.monotonic() + 3
        while facts._polled < now[0] and time.monotonic() < deadline:
            time.sleep(0.02)
        facts.current()  # The poll thread caught up: deciding again.
    finally:
        facts.close()

"""Fault: two deciders holding the same records record different inventory revisions.

A decider computes the content revision from the rows when it loads them
and moves it with each change it applies (only the changed buckets are
rehashed, and the index keeps the rows as stored text). If the moved
revision drifted from what a load of the same rows gives, a request made on
one replica and approved on another (or before and after a restart) would
name different facts for the same inventory. Each test compares a running
decider, after changes, with a fresh load of the same rows, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from hitlgate.engine._resources import bundled_data_dir
from hitlgate.engine.decide.inventory_db import DatabaseFacts, InventoryDB
from hitlgate.errors import PolicyError


@pytest.fixture
def db(db_url: str) -> Iterator[InventoryDB]:
    inv = InventoryDB.open(db_url)
    inv.import_files([bundled_data_dir()])
    yield inv
    inv.close()


def _fresh(db: InventoryDB) -> DatabaseFacts:
    return DatabaseFacts(InventoryDB(db.store), poll_interval=0, background=False)


def test_changes_applied_one_by_one_give_the_revision_a_fresh_load_gives(db: InventoryDB) -> None:
    running = _fresh(db)
    before = running.current().revision
    rec, _ = db.get("identities", "dev-analytics-key")
    db.put("identities", "dev-analytics-key", {**rec, "description": "edited by the CMDB sync"})
    db.put("teams", "team-spare", {"name": "Spare"})
    db.put("protected", "dev-analytics-key", True)
    db.delete("approvers", "carol")
    moved = running.current()
    assert moved.revision != before
    assert moved.record("identities", "dev-analytics-key")["description"] == "edited by the CMDB sync"
    assert moved.record("approvers", "carol") is None
    assert moved.revision == _fresh(db).current().revision == db.status().content_revision
    # Undoing every change gives back the first revision: the digest is of the records, not of their history.
    db.put("identities", "dev-analytics-key", rec)
    db.delete("teams", "team-spare")
    db.delete("protected", "dev-analytics-key")
    db.import_files([bundled_data_dir()])
    assert running.current().revision == before == _fresh(db).current().revision


def test_a_row_stored_in_another_json_form_keeps_both_deciders_on_one_revision(db: InventoryDB) -> None:
    # A CMDB sync writing straight into the table stores the same facts with
    # spaces and another key order; it then edits the row again. The running
    # decider must take the row out of the digest as it was stored, or its
    # revision would drift from a fresh load's for good.
    running = _fresh(db)
    running.current()
    text = ('{ "used_by": [], "privilege": "low", "owner": "team-payments", "kind": "api_key", '
            '"environment": "development" }')
    for stored in (text, text.replace('"low"', '"high"')):
        with db.store.engine.begin() as conn:
            conn.execute(sa.text(
                "UPDATE inventory_records SET record = :r, version = (SELECT version FROM inventory_meta) + 1 "
                "WHERE section = 'identities' AND id = 'dev-analytics-key'"), {"r": stored})
            conn.execute(sa.text("UPDATE inventory_meta SET version = version + 1"))
        held = running.current()
        assert held.record("identities", "dev-analytics-key")["environment"] == "development"
        assert held.revision == _fresh(db).current().revision
    assert running.current().record("identities", "dev-analytics-key")["privilege"] == "high"


def test_records_read_from_the_index_are_copies_a_caller_cannot_change(db: InventoryDB) -> None:
    index = _fresh(db).current()
    rec = index.record("identities", "dev-analytics-key")
    rec["environment"] = "production"
    assert index.record("identities", "dev-analytics-key")["environment"] != "production"
    hood = index.neighbourhood("dev-analytics-key")
    hood["identities"]["dev-analytics-key"]["privilege"] = "admin"
    assert index.neighbourhood("dev-analytics-key")["identities"]["dev-analytics-key"]["privilege"] != "admin"


def test_a_row_in_a_section_no_schema_knows_breaks_the_inventory_at_load(db: InventoryDB) -> None:
    # The load reads each known section by key range; a row written with raw
    # SQL under another section must still be seen, not silently skipped.
    with db.store.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO inventory_records (section, id, record, version) "
            "VALUES ('secrets', 'k1', '{}', (SELECT version FROM inventory_meta) + 1)"))
        conn.execute(sa.text("UPDATE inventory_meta SET version = version + 1"))
    with pytest.raises(PolicyError, match="the inventory in the database is invalid") as err:
        _fresh(db).current()
    assert "secrets.k1: unknown inventory section 'secrets'" in str(err.value)

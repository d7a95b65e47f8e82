"""Threat: a database writer edits the inventory tables with raw SQL, bypassing hitlgate.

Two attacks: (1) a row edited in place, version untouched, so the change
chain does not move; the decision must not be recorded under the revision
of the facts it replaced. (2) a row that breaks the inventory schema (an
upper-case environment that no rule matches, text that is not JSON, a
garbage approver key); the inventory must be broken (fail closed, naming the
record), never decided on, and never a crash that names nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from hitlgate.engine._resources import bundled_data_dir
from hitlgate.engine.decide.inventory_db import DatabaseFacts, InventoryDB
from hitlgate.errors import InputError, PolicyError


@pytest.fixture
def db(tmp_path) -> Iterator[InventoryDB]:
    inv = InventoryDB.open(f"sqlite:///{tmp_path / 'state.db'}")
    inv.import_files([bundled_data_dir()])
    yield inv
    inv.close()


def _raw(db: InventoryDB, sql: str, **params: object) -> None:
    with db.store.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def _record(db: InventoryDB, section: str, key: str, text: str, bump: bool) -> None:
    if bump:
        # A writer who also moves the version, so pollers see the row.
        _raw(db, "UPDATE inventory_records SET record = :r, version = (SELECT version FROM inventory_meta) + 1 "
                 "WHERE section = :s AND id = :i", r=text, s=section, i=key)
        _raw(db, "UPDATE inventory_meta SET version = version + 1")
    else:
        _raw(db, "UPDATE inventory_records SET record = :r WHERE section = :s AND id = :i", r=text, s=section, i=key)


DOWNGRADE = ('{"environment":"development","kind":"api_key","owner":"team-payments","privilege":"low",'
             '"used_by":[]}')


def test_raw_sql_edit_changes_the_revision_a_fresh_decider_records(db):
    before = DatabaseFacts(InventoryDB(db.store), background=False).current().revision
    _record(db, "identities", "svc-payments-key", DOWNGRADE, bump=False)
    after = DatabaseFacts(InventoryDB(db.store), background=False).current().revision
    assert after != before
    assert db.status().content_revision == after
    # The change chain did not move: only the content revision names the edit.
    assert db.status().revision == db.head()[1]


def test_a_running_decider_keeps_the_revision_of_the_facts_it_holds(db):
    facts = DatabaseFacts(InventoryDB(db.store), poll_interval=0, background=False)
    index = facts.current()
    held = index.revision
    _record(db, "identities", "svc-payments-key", DOWNGRADE, bump=False)
    # No version moved, so the running decider still holds (and names) the old record.
    again = facts.current()
    assert again.record("identities", "svc-payments-key")["environment"] == "production"
    assert again.revision == held


@pytest.mark.parametrize("bump", [False, True], ids=["at-load", "through-the-change-feed"])
@pytest.mark.parametrize(
    ("section", "key", "text", "named"),
    [
        ("identities", "svc-payments-key",
         '{"environment":"PRODUCTION","kind":"api_key","owner":"team-payments","privilege":"ADMIN","used_by":[]}',
         "identities.svc-payments-key"),
        ("identities", "svc-payments-key", "not json", "identities.svc-payments-key: the stored record is not valid"),
        ("identities", "svc-payments-key", "[]", "identities.svc-payments-key"),
        ("approvers", "grace", '{"public_key":"garbage","roles":["security"],"teams":[]}', "approvers.grace"),
        ("identities", "svc-payments-key",
         '{"environment":"production","kind":"api_key","owner":"team-nobody","privilege":"admin","used_by":[]}',
         "identities.svc-payments-key.owner"),
    ],
    ids=["upper-case-enum", "not-json", "not-an-object", "garbage-key", "dangling-owner"],
)
def test_an_invalid_row_written_outside_hitlgate_breaks_the_inventory(db, section, key, text, named, bump):
    if bump:
        facts = DatabaseFacts(InventoryDB(db.store), poll_interval=0, background=False)
        facts.current()
        _record(db, section, key, text, bump=True)
        with pytest.raises(PolicyError, match="the inventory in the database is invalid") as err:
            facts.current()
    else:
        _record(db, section, key, text, bump=False)
        facts = DatabaseFacts(InventoryDB(db.store), poll_interval=0, background=False)
        with pytest.raises(PolicyError, match="the inventory in the database is invalid") as err:
            facts.current()
    assert named in str(err.value)
    assert err.value.exit_code == 5


@pytest.mark.parametrize("content", ["", "\n\n", '{"section": "teams", "id": "t1", "record": {"name": "One"}}\n'],
                         ids=["empty", "blank-lines", "teams-only"])
def test_an_empty_export_does_not_wipe_the_inventory(db, tmp_path, content):
    export = tmp_path / "cmdb.jsonl"
    export.write_text(content)
    before = db.head()
    with pytest.raises(InputError, match="importing them would delete the whole inventory") as err:
        db.import_files([export])
    assert err.value.code == "invalid_inventory"
    assert db.head() == before


def test_a_team_deleted_with_raw_sql_while_records_still_name_it_breaks_a_running_decider(db):
    # Deleted through hitlgate, the delete is refused while another record
    # refers to the team. Deleted with raw SQL (version moved), a running
    # decider must refuse it too, as a restarted one does: otherwise two
    # replicas decide on different inventories.
    facts = DatabaseFacts(InventoryDB(db.store), poll_interval=0, background=False)
    facts.current()
    _record(db, "teams", "team-payments", None, bump=True)  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="the inventory in the database is invalid") as err:
        facts.current()
    assert "still refers to teams.team-payments, which was deleted" in str(err.value)
    with pytest.raises(PolicyError, match="the inventory in the database is invalid"):
        DatabaseFacts(InventoryDB(db.store), poll_interval=0, background=False).current()


def test_a_team_deleted_together_with_everything_that_named_it_is_accepted(db):
    facts = DatabaseFacts(InventoryDB(db.store), poll_interval=0, background=False)
    facts.current()
    db.put("teams", "team-spare", {"name": "Spare"})
    facts.current()
    _record(db, "teams", "team-spare", None, bump=True)  # type: ignore[arg-type]
    assert facts.current().record("teams", "team-spare") is None

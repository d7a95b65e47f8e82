"""Threat: a warrant id is consumed twice, so the action it authorises runs twice.

The guard refuses a replay it can see, but the last word is the
database's: ``consumed_warrants.jti`` is unique, and the store turns the
duplicate insert into a replay refusal. These tests hold each layer on its
own, so that dropping the constraint from the schema, or swallowing the
duplicate-insert error in the store, fails a test even though the guard's
own check would still catch the everyday replay.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from hitlgate.engine import Config
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import InvalidWarrant
from tests.workflow._helpers import granted_warrant, proposal


def _granted(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    with engine.store.read() as tx:
        record = tx.warrant_for(req.id)
    assert record is not None
    return doc, req, token, record.jti


def test_database_refuses_a_second_consumption_row(engine):
    # Whatever the code above does, the schema itself allows one row per jti.
    _doc, req, _token, jti = _granted(engine)
    row = {"jti": jti, "request_id": req.id, "consumed_at": engine.now()}
    with engine.store.engine.begin() as conn:
        conn.execute(t.consumed.insert().values(**row))
    with pytest.raises(IntegrityError, match="(?i)unique|duplicate key"), engine.store.engine.begin() as conn:
        conn.execute(t.consumed.insert().values(**row))
    with engine.store.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(t.consumed)).scalar_one()
    assert count == 1


def test_store_turns_a_duplicate_consumption_into_a_replay_refusal(engine):
    _doc, req, _token, jti = _granted(engine)
    with engine.store.write() as tx:
        tx.consume(jti=jti, request_id=req.id, now=engine.now())
    with pytest.raises(InvalidWarrant, match=rf"^warrant {jti} was already used \(replay\)$") as err, \
            engine.store.write() as tx:
        tx.consume(jti=jti, request_id=req.id, now=engine.now())
    assert err.value.code == "replay"
    with engine.store.read() as tx:
        assert tx.is_consumed(jti)
        assert tx.warrant_for(req.id).consumed_at == engine.now()


def test_refused_duplicate_consumption_leaves_the_rest_of_the_transaction_usable(engine):
    # The duplicate insert is skipped (ON CONFLICT DO NOTHING): the refusal is an ordinary
    # error the caller can act on, not a poisoned transaction.
    _doc, req, _token, jti = _granted(engine)
    with engine.store.write() as tx:
        tx.consume(jti=jti, request_id=req.id, now=engine.now())
        with pytest.raises(InvalidWarrant, match="already used"):
            tx.consume(jti=jti, request_id=req.id, now=engine.now())
        assert tx.warrant_for(req.id).consumed_at is not None


@pytest.mark.postgres
def test_consumption_committed_outside_the_lock_is_refused_by_the_database(pg_cluster, tmp_path, bundled_decider):
    # A second writer that does not take the engine's lock (another tool, a
    # buggy replica) inserts the consumption while the guard is between its
    # own check and its insert. On PostgreSQL the guard's insert then waits
    # for that writer and fails on the unique key: the guard must refuse.
    engine = Engine(Config(state_url=pg_cluster.new_database(), key_dir=tmp_path / "keys"), bundled_decider, demo=True)
    try:
        doc, req, token, jti = _granted(engine)
        outcome: dict[str, object] = {}

        def run_guard() -> None:
            try:
                outcome["ran"] = engine.guard().execute(token, doc["action"], lambda a: "ran")
            except InvalidWarrant as exc:
                outcome["refused"] = exc

        with engine.store.engine.connect() as rogue:
            rogue.execute(t.consumed.insert().values(jti=jti, request_id=req.id, consumed_at=engine.now()))
            guard_thread = threading.Thread(target=run_guard, daemon=True)
            guard_thread.start()
            deadline = time.monotonic() + 30
            with engine.store.engine.connect() as probe:
                while time.monotonic() < deadline:
                    waiting = probe.execute(sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE "
                        "'%consumed_warrants%'"
                    )).scalar_one()
                    probe.rollback()
                    if waiting or not guard_thread.is_alive():
                        break
                    time.sleep(0.02)
            assert guard_thread.is_alive(), f"the guard did not wait for the rogue insert: {outcome}"
            rogue.commit()
        guard_thread.join(timeout=30)
        assert not guard_thread.is_alive()
        assert "ran" not in outcome, "the action ran on a warrant already consumed"
        refused = outcome["refused"]
        assert isinstance(refused, InvalidWarrant) and refused.code == "replay"
        assert str(refused) == f"invalid warrant: warrant {jti} was already used (replay)"
        kinds = [e.kind for e in engine.audit_events(req.id)]
        assert "consumed" not in kinds and kinds[-1] == "warrant_refused"
    finally:
        engine.close()

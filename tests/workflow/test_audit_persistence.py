"""Audit events are written with every state change, carry controls and the digest, and verify."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import AuditChainError
from tests.workflow._helpers import granted_warrant, proposal, rewrite_chain


def test_full_path_events_in_order(engine):
    doc = proposal("rotate_api_key", "svc-payments-key")
    req, token = granted_warrant(engine, doc, ("erin", "alice"))
    engine.guard().execute(token, doc["action"], lambda a: None)
    events = engine.audit_events(req.id)
    assert [e.kind for e in events] == [
        "proposed", "decided", "approved", "approved", "granted", "warrant_issued", "consumed", "executed"
    ]
    for e in events:
        assert e.payload["action_digest"] == req.action_digest
        assert {c["id"] for c in e.payload["controls"]} == {"NHI-07", "A-03", "RS.MA"}
    report = engine.verify_audit()
    assert report.events == len(engine.audit_events())


def test_denied_and_auto_allow_events(engine):
    denied = engine.propose(proposal("revoke_secret", "root-ca-key"))
    auto = engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    assert [e.kind for e in engine.audit_events(denied.id)] == ["proposed", "decided", "denied"]
    assert [e.kind for e in engine.audit_events(auto.id)] == ["proposed", "decided", "granted", "warrant_issued"]


def test_checkpoints_are_signed_every_n_events(make_engine):
    eng = make_engine(checkpoint_every=3)
    for _ in range(3):
        eng.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with eng.store.read() as tx:
        cps = list(tx.iter_checkpoints())
    assert [c.seq for c in cps] == [3, 6]
    eng.checkpoint()  # The head is already signed: nothing new.
    eng.propose(proposal("revoke_secret", "root-ca-key"))
    assert eng.checkpoint().seq == 9
    assert eng.verify_audit().checkpoints == 3


def test_database_edit_of_an_event_is_detected(engine):
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with engine.store.engine.begin() as conn:
        conn.execute(t.audit_events.update().where(t.audit_events.c.seq == 2)
                     .values(payload=json.dumps({"tier": "auto_allow"})))
    with pytest.raises(AuditChainError, match="seq 2"):
        engine.verify_audit()


def test_deleted_event_is_detected(engine):
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with engine.store.engine.begin() as conn:
        conn.execute(sa.delete(t.audit_events).where(t.audit_events.c.seq == 1))
    with pytest.raises(AuditChainError, match="seq"):
        engine.verify_audit()


def test_full_rewrite_behind_a_checkpoint_is_detected(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req = engine.propose(doc)
    engine.checkpoint()
    engine.propose(proposal("rotate_api_key", "dev-analytics-key"))

    def hide_requester(payload):
        payload["requester"] = {"id": "someone-else", "kind": "human"}

    rewrite_chain(engine, 1, hide_requester)
    assert engine.audit_events(req.id)[0].payload["requester"]["id"] == "someone-else"
    with pytest.raises(AuditChainError, match="checkpoint"):
        engine.verify_audit()


def test_truncation_past_a_checkpoint_is_detected(engine):
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    cp = engine.checkpoint()
    with engine.store.engine.begin() as conn:
        conn.execute(sa.delete(t.audit_events).where(t.audit_events.c.seq == cp.seq))
    with pytest.raises(AuditChainError, match="truncated"):
        engine.verify_audit()


def test_reordered_events_are_detected(engine):
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with engine.store.engine.begin() as conn:
        rows = {r.seq: r for r in conn.execute(sa.select(t.audit_events))}
        for a, b in ((1, 2), (2, 1)):
            conn.execute(t.audit_events.update().where(t.audit_events.c.seq == a).values(
                kind=rows[b].kind, payload=rows[b].payload, prev_hash=rows[b].prev_hash, hash=rows[b].hash))
    with pytest.raises(AuditChainError, match="seq 1"):
        engine.verify_audit()

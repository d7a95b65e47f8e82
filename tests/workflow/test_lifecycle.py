"""The request state machine: legal moves, and every illegal one raising."""

from __future__ import annotations

import itertools

import pytest

from hitlgate.engine import lifecycle as lc
from hitlgate.errors import IllegalTransition
from tests.workflow._helpers import granted_warrant, proposal

LEGAL = {
    ("pending", "granted"), ("pending", "rejected"), ("pending", "expired"), ("pending", "revoked"),
    ("granted", "executed"), ("granted", "execution_failed"), ("granted", "execution_unknown"),
    ("granted", "revoked"), ("granted", "expired"),
}


@pytest.mark.parametrize("current,target", sorted(itertools.product(lc.STATES, lc.STATES)))
def test_transition_table(current, target):
    if (current, target) in LEGAL:
        lc.check_transition(current, target)
    else:
        with pytest.raises(IllegalTransition):
            lc.check_transition(current, target)


def test_final_states_have_no_way_out():
    assert lc.FINAL == {"denied", "rejected", "expired", "revoked", "executed", "execution_failed", "execution_unknown"}
    assert lc.is_final("denied") and not lc.is_final("granted")


def test_initial_states_by_tier():
    assert [lc.initial_state(t) for t in ("auto_allow", "single_approval", "dual_approval", "deny")] == [
        "granted", "pending", "pending", "denied"
    ]
    with pytest.raises(IllegalTransition):
        lc.initial_state("maybe")
    with pytest.raises(IllegalTransition):
        lc.check_transition("limbo", "granted")


def test_denied_request_can_never_be_granted_or_warranted(engine):
    req = engine.propose(proposal("revoke_secret", "root-ca-key"))
    assert req.status == "denied"
    with pytest.raises(IllegalTransition):
        engine.warrant(req.id)
    with pytest.raises(IllegalTransition), engine.store.write() as tx:
        tx.transition(req.id, "granted", now=engine.now())
    assert engine.get(req.id).status == "denied"


def test_outcome_cannot_be_recorded_twice(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    guard = engine.guard()
    grant = guard.consume(token, doc["action"])
    guard.record(grant, "executed")
    with pytest.raises(IllegalTransition):
        guard.record(grant, "execution_failed")
    assert engine.get(req.id).status == "executed"


def test_illegal_transition_leaves_nothing_half_written(engine):
    req = engine.propose(proposal("revoke_secret", "root-ca-key"))
    before = len(engine.audit_events())
    with pytest.raises(IllegalTransition), engine.store.write() as tx:
        tx.append("granted", request_id=req.id, payload={}, at=engine.now())
        tx.transition(req.id, "granted", now=engine.now())
    assert len(engine.audit_events()) == before
    engine.verify_audit()

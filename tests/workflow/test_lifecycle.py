"""The request state machine: legal moves, and every illegal one raising."""

from __future__ import annotations

import itertools

import pytest

from hitlgate.engine.approve import lifecycle as lc
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
        final = f"the request is {current}, a final state; it cannot become {target}"
        moving = f"a {current} request cannot become {target}"
        with pytest.raises(IllegalTransition, match=final if current in lc.FINAL else moving):
            lc.check_transition(current, target)


def test_final_states_have_no_way_out():
    assert lc.FINAL == {"denied", "rejected", "expired", "revoked", "executed", "execution_failed", "execution_unknown"}
    assert lc.is_final("denied") and not lc.is_final("granted")


def test_initial_states_by_tier():
    assert [lc.initial_state(t) for t in ("auto_allow", "single_approval", "dual_approval", "deny")] == [
        "granted", "pending", "pending", "denied"
    ]
    with pytest.raises(IllegalTransition, match="no request may be created with unknown tier 'maybe'"):
        lc.initial_state("maybe")
    with pytest.raises(IllegalTransition, match="unknown request state 'limbo'"):
        lc.check_transition("limbo", "granted")


def test_denied_request_can_never_be_granted_or_warranted(engine):
    req = engine.propose(proposal("revoke_secret", "root-ca-key"))
    assert req.status == "denied"
    with pytest.raises(IllegalTransition, match=f"request {req.id} is denied; no warrant can be issued for it"):
        engine.warrant(req.id)
    with pytest.raises(IllegalTransition, match="the request is denied, a final state; it cannot become granted"), \
            engine.store.write() as tx:
        tx.transition(req.id, "granted", now=engine.now(), reason="moved by hand")
    assert engine.get(req.id).status == "denied"


def test_outcome_cannot_be_recorded_twice(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    guard = engine.guard()
    grant = guard.consume(token, doc["action"])
    guard.record(grant, "executed")
    with pytest.raises(IllegalTransition, match="the request is executed, a final state; it cannot become "
                                                "execution_failed"):
        guard.record(grant, "execution_failed")
    assert engine.get(req.id).status == "executed"


def test_illegal_transition_leaves_nothing_half_written(engine):
    req = engine.propose(proposal("revoke_secret", "root-ca-key"))
    before = len(engine.audit_events())
    with pytest.raises(IllegalTransition, match="the request is denied, a final state"), engine.store.write() as tx:
        tx.append("granted", request_id=req.id, payload={}, at=engine.now())
        tx.transition(req.id, "granted", now=engine.now(), reason="moved by hand")
    assert len(engine.audit_events()) == before
    engine.verify_audit()


def test_unknown_outcome_and_naive_time_are_refused(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    guard = engine.guard()
    grant = guard.consume(token, doc["action"])
    with pytest.raises(ValueError, match="unknown outcome 'succeeded'"):
        guard.record(grant, "succeeded")
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        guard.record(grant, "executed", now=engine.now().replace(tzinfo=None))
    guard.record(grant, "executed")
    after = engine.get(req.id)
    assert (after.status, after.status_reason) == ("executed", "")

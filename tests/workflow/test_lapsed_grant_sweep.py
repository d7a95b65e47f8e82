"""Threat: a grant that lapsed stays usable because the expiry sweep missed it or expired the wrong request.

``Engine.expire_due`` is the sweep a service runs on a timer. A granted
request whose warrant lapsed unused, or that never got a warrant before its
window closed, must become ``expired`` at exactly its deadline and not a
second earlier; a request whose warrant was used must never be expired by
it; and a used warrant with no outcome becomes ``execution_unknown`` only
after the warrant's lifetime plus the grace period. Each boundary is tested
on both sides, with requests of every other kind in the store at the same
time, so a sweep that picks the wrong set fails here.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from hitlgate.engine.approve.workflow import OUTCOME_GRACE
from hitlgate.errors import IllegalTransition
from tests.workflow._helpers import granted_warrant, proposal, signed, vote

LAPSED = "the grant lapsed without its warrant being used"


def _statuses(engine, *reqs):
    return [engine.get(r.id).status for r in reqs]


def test_unused_warrant_expires_at_its_deadline_and_a_used_one_does_not(engine, clock):
    unused_doc = proposal("suspend_service_account", "svc-ci-runner")
    used_doc = proposal("suspend_service_account", "svc-reporting")
    unused, _ = granted_warrant(engine, unused_doc, ("carol",))
    used, token = granted_warrant(engine, used_doc, ("frank",))
    engine.guard().consume(token, used_doc["action"])
    with engine.store.read() as tx:
        deadline = tx.warrant_for(unused.id).expires_at

    clock.now = deadline - timedelta(seconds=1)
    assert engine.expire_due() == []
    assert _statuses(engine, unused, used) == ["granted", "granted"]

    clock.now = deadline  # A warrant is dead at its expiry instant, so the sweep expires it then.
    changed = engine.expire_due()
    assert [(r.id, r.status, r.status_reason) for r in changed] == [(unused.id, "expired", LAPSED)]
    assert engine.get(used.id).status == "granted"
    last = engine.audit_events(unused.id)[-1]
    assert (last.kind, last.payload["reason"]) == ("expired", LAPSED)


def test_grant_without_a_warrant_expires_when_its_window_closes(engine, clock):
    never = vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol")
    assert never.status == "granted"
    clock.advance(60)
    later = vote(engine, engine.propose(proposal("suspend_service_account", "svc-reporting")), "frank")
    waiting = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))

    clock.now = never.expires_at - timedelta(seconds=1)
    assert engine.expire_due() == []

    clock.now = never.expires_at
    changed = engine.expire_due()
    assert [(r.id, r.status, r.status_reason) for r in changed] == [(never.id, "expired", LAPSED)]
    assert _statuses(engine, later, waiting) == ["granted", "pending"]
    assert [e.kind for e in engine.audit_events(never.id)][-1] == "expired"


def test_sweep_at_an_explicit_time_uses_that_time_not_the_clock(engine, clock):
    req, _ = granted_warrant(engine, proposal("suspend_service_account", "svc-ci-runner"), ("carol",))
    at = clock.now + timedelta(seconds=engine.warrant_lifetime(req.decision))
    changed = engine.expire_due(now=at)
    assert [(r.id, r.status) for r in changed] == [(req.id, "expired")]
    assert engine.audit_events(req.id)[-1].at == at


def test_used_warrant_without_outcome_becomes_unknown_only_after_its_lifetime_and_grace(engine, clock):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    clock.advance(30)
    engine.guard().consume(token, doc["action"])
    # The tier's own warrant lifetime (the policy's), longer than the configured default: an executor
    # that started late in it must not be declared lost while the policy still gave it time.
    assert req.decision.warrant_ttl_seconds > engine.config.warrant_ttl_seconds
    with engine.store.read() as tx:
        expires_at = tx.warrant_for(req.id).expires_at
    cutoff = expires_at + OUTCOME_GRACE
    assert cutoff > clock.now + timedelta(seconds=engine.config.warrant_ttl_seconds) + OUTCOME_GRACE

    clock.now = cutoff - timedelta(seconds=1)
    assert engine.expire_due() == []
    assert engine.get(req.id).status == "granted"

    clock.now = cutoff
    changed = engine.expire_due()
    assert [(r.id, r.status, r.status_reason) for r in changed] == [
        (req.id, "execution_unknown", "the warrant was used but no outcome was ever recorded")
    ]
    last = engine.audit_events(req.id)[-1]
    assert (last.kind, last.request_id) == ("execution_unknown", req.id)
    assert (last.payload["status"], last.payload["reason"]) == ("execution_unknown", "no outcome recorded")


def test_sweep_leaves_a_revoked_request_alone_when_its_warrant_lapses(engine, clock):
    # Only granted requests are swept: a revoked one whose unused warrant
    # lapses later must stay revoked (revoked -> expired is not a
    # transition, and the sweep must not fail on it either).
    req, _ = granted_warrant(engine, proposal("suspend_service_account", "svc-ci-runner"), ("carol",))
    engine.revoke(req.id, by="alice", signed=signed(req, "alice", "reject", at=clock.now))
    clock.advance(engine.config.warrant_ttl_seconds + 1)
    assert engine.expire_due() == []
    assert engine.get(req.id).status == "revoked"


def test_grant_without_a_warrant_expires_though_other_requests_hold_warrants(engine, clock):
    never = vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol")
    other, _ = granted_warrant(engine, proposal("suspend_service_account", "svc-reporting"), ("frank",))
    clock.now = never.expires_at
    changed = {r.id: r.status for r in engine.expire_due()}
    assert changed[never.id] == "expired"


def test_grant_late_in_the_window_keeps_its_full_warrant_lifetime_from_the_grant(engine, clock):
    # The warrant's clock starts at the grant: a quorum met five seconds
    # before the approval window closes still gets the whole lifetime the
    # policy gives, even past the window, and the request stays granted
    # until then.
    pending = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    clock.now = pending.expires_at - timedelta(seconds=5)
    granted_at = clock.now
    req = vote(engine, pending, "carol")
    lifetime = engine.warrant_lifetime(req.decision)
    assert lifetime == req.decision.warrant_ttl_seconds == 600
    assert req.expires_at == granted_at + timedelta(seconds=lifetime) > pending.expires_at
    clock.now = pending.expires_at + timedelta(seconds=1)
    assert engine.expire_due() == []
    engine.warrant(req.id)
    with engine.store.read() as tx:
        lapses = tx.warrant_for(req.id).expires_at
    assert lapses == req.expires_at
    assert engine.get(req.id).status == "granted"
    clock.now = lapses - timedelta(seconds=1)
    assert engine.expire_due() == []
    clock.now = lapses
    assert [r.id for r in engine.expire_due()] == [req.id]


def test_warrant_fetched_late_gets_only_what_is_left_of_its_lifetime(engine, clock):
    # Fetching late never restarts the clock: the warrant expires at the
    # grant plus the lifetime, not at the fetch plus the lifetime.
    req = vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol")
    granted_at = clock.now
    clock.advance(req.decision.warrant_ttl_seconds - 30)
    record = engine.warrant(req.id)
    assert record.expires_at == granted_at + timedelta(seconds=req.decision.warrant_ttl_seconds)
    assert record.issued_at == clock.now


def test_warrant_fetched_after_its_lifetime_from_the_grant_is_refused_and_the_request_lapses(engine, clock):
    req = vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol")
    clock.advance(req.decision.warrant_ttl_seconds)
    with pytest.raises(IllegalTransition, match=f"request {req.id} was granted but its warrant lifetime ran out"):
        engine.warrant(req.id)
    assert (engine.get(req.id).status, engine.get(req.id).status_reason) == ("expired", LAPSED)


def test_sweep_touches_no_settled_request_and_runs_twice_cleanly(engine, clock):
    # Rejected, already expired and revoked requests have no warrant and a
    # closed window too; the sweep must leave them as they are (and not
    # fail on a transition the lifecycle forbids), run after run.
    rejected = vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol", "reject")
    stale = engine.propose(proposal("suspend_service_account", "svc-reporting"))
    clock.now = max(rejected.expires_at, stale.expires_at) + timedelta(seconds=1)
    assert [(r.id, r.status) for r in engine.expire_due()] == [(stale.id, "expired")]
    assert engine.expire_due() == []
    assert _statuses(engine, rejected, stale) == ["rejected", "expired"]


def test_sweep_leaves_an_executed_request_alone_after_its_warrant_expires(engine, clock):
    # Only a *granted* request whose used warrant expired becomes execution_unknown: one whose
    # executor reported back is settled, and sweeping it would rewrite a known outcome as unknown.
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    engine.guard().execute(token, doc["action"], lambda action: "suspended")
    assert engine.get(req.id).status == "executed"
    lost_doc = proposal("suspend_service_account", "svc-reporting")
    lost, lost_token = granted_warrant(engine, lost_doc, ("frank",))
    engine.guard().consume(lost_token, lost_doc["action"])
    clock.advance(req.decision.warrant_ttl_seconds + OUTCOME_GRACE.total_seconds() + 60)
    assert [(r.id, r.status) for r in engine.expire_due()] == [(lost.id, "execution_unknown")]
    assert engine.get(req.id).status == "executed"
    assert engine.expire_due() == []


def test_sweep_of_used_warrants_takes_at_most_its_batch(engine, clock):
    taken = []
    for target, who in (("svc-ci-runner", "carol"), ("svc-reporting", "frank")):
        doc = proposal("suspend_service_account", target)
        req, token = granted_warrant(engine, doc, (who,))
        engine.guard().consume(token, doc["action"])
        taken.append(req)
    clock.advance(taken[0].decision.warrant_ttl_seconds + OUTCOME_GRACE.total_seconds() + 60)
    first = engine.expire_due(limit=1)
    assert len(first) == 1 and first[0].status == "execution_unknown"
    second = engine.expire_due(limit=1)
    assert len(second) == 1 and {first[0].id, second[0].id} == {r.id for r in taken}
    assert engine.expire_due(limit=1) == []


def test_sweep_of_unused_grants_takes_at_most_its_batch(engine, clock):
    lapsed = []
    for target, who in (("svc-ci-runner", "carol"), ("svc-reporting", "frank")):
        req, _token = granted_warrant(engine, proposal("suspend_service_account", target), (who,))
        lapsed.append(req.id)
    clock.advance(engine.get(lapsed[0]).decision.warrant_ttl_seconds + 1)
    first = engine.expire_due(limit=1)
    assert [(r.status, r.status_reason) for r in first] == [("expired", LAPSED)]
    second = engine.expire_due(limit=1)
    assert {first[0].id, second[0].id} == set(lapsed)
    assert engine.expire_due(limit=1) == []

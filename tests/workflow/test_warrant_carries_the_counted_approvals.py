"""The approvals a warrant carries: the ones the quorum counted, each with the place it filled.

A dual-approval request needs a security approver and a member of
team-payments. alice and grace (both security) approve before bob
(team-payments): the quorum counts one of them and bob. The warrant carries
exactly the two counted approvals, each with the place it filled, whichever
order they were cast in; the uncounted one must not end the list early. An
approver a policy counts beyond its named places (more approvals required
than slots) is carried too, as a registered approver.
"""

from __future__ import annotations

from hitlgate.engine.approve.workflow import Engine
from tests.workflow._helpers import proposal, vote


def test_uncounted_approval_is_skipped_not_the_end_of_the_list(engine: Engine) -> None:
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    assert req.tier == "dual_approval"
    for name in ("alice", "grace", "bob"):
        req = vote(engine, req, name)
    assert req.status == "granted"
    counted = set(engine.progress(req.id).counted)
    assert len(counted) == 2 and "bob" in counted
    record = engine.warrant(req.id)
    claims = engine.guard().check(record.token, proposal("rotate_api_key", "svc-payments-key")["action"])
    carried = {a["approver"]: a["role"] for a in claims.approvals}
    assert set(carried) == counted
    assert carried["bob"] == "a member of team-payments"
    # The chain records the same: the warrant, its key, its deadline and who it carries, in voting order.
    (issued,) = [e for e in engine.audit_events(req.id) if e.kind == "warrant_issued"]
    recorded = {k: issued.payload.get(k) for k in ("jti", "kid", "expires_at", "approvals")}
    assert recorded == {"jti": record.jti, "kid": record.kid, "expires_at": record.expires_at.isoformat(),
                        "approvals": [a["approver"] for a in claims.approvals]}
    assert issued.payload["approvals"][-1] == "bob"


def test_approver_counted_beyond_the_slots_is_carried_as_a_registered_approver(make_engine, pack_copy) -> None:
    # A policy may ask for more approvals than it names places for: single approval by two people, one of
    # them security or the owner's team. The one beyond the slot is carried too, as a registered approver.
    rego = pack_copy / "decision.rego"
    one_slot = '{"required": 1, "slots": [{"roles": ["security"], "teams": [owner]}]} if tier == "single_approval"'
    source = rego.read_text()
    assert source.count(one_slot) == 1
    rego.write_text(source.replace(one_slot, one_slot.replace('"required": 1', '"required": 2')))
    engine = make_engine(pack=pack_copy)
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req = engine.propose(doc)
    for name in ("carol", "alice"):
        req = vote(engine, req, name)
    assert req.status == "granted"
    claims = engine.guard().check(engine.warrant(req.id).token, doc["action"])
    roles = sorted(a["role"] for a in claims.approvals)
    assert len(roles) == 2 and "registered approver" in roles

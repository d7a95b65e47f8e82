"""The events a proposal appends record the whole proposal and decision, field by field.

An auditor reconstructs from the chain alone what was asked, by whom and
why, and what the policy decided at which revision: a field dropped or
renamed in the ``proposed``, ``decided``, ``granted`` or ``denied`` event
loses that for good (the chain is append-only). Each payload is compared
whole, built from the request the engine returned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine, Request
from hitlgate.engine.decide.proposal import Proposal, canonical_json
from hitlgate.engine.ledger import _store_schema as t
from tests.workflow._helpers import proposal


def _common(req: Request) -> dict[str, Any]:
    """What every event of a request carries: its action's digest, its controls (framework and id) and its status."""
    controls = [{"framework": c["framework"], "id": c["id"]} for c in req.decision.controls]
    assert controls and all(c["framework"] and c["id"] for c in controls)
    return {"action_digest": req.action_digest, "controls": controls, "status": req.status}


def _decided(req: Request, warrant_ttl: int) -> dict[str, Any]:
    d = req.decision
    return {**_common(req), "tier": d.tier, "risk_factors": list(d.risk_factors), "reasons": list(d.reasons),
            "quorum": d.quorum.to_dict(), "ttl_seconds": d.ttl_seconds, "warrant_ttl_seconds": warrant_ttl,
            "policy_revision": d.policy_revision}


def test_an_auto_allowed_proposal_records_what_was_asked_decided_and_granted(
    make_engine: Callable[..., Engine]
) -> None:
    engine = make_engine()
    doc = proposal("rotate_api_key", "dev-analytics-key", reason="rotation drill")
    req = engine.propose(doc)
    assert req.status == "granted" and req.decision.tier == "auto_allow"
    events = engine.audit_events(req.id)
    assert [e.kind for e in events] == ["proposed", "decided", "granted", "warrant_issued"]
    proposed, decided, granted, _ = (e.payload for e in events)
    assert proposed == {**_common(req), "action": doc["action"], "requester": doc["requester"],
                        "justification": "workflow test", "incident": "INC-1"}
    assert decided == _decided(req, engine.warrant_lifetime(req.decision))
    assert granted == {**_common(req), "approvals": [], "reason": "auto_allow"}
    assert req.status_reason == req.decision.reasons[-1]


def test_a_denied_proposal_records_the_denial_and_its_reasons(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    doc = proposal("revoke_secret", "root-ca-key")
    del doc["incident"]
    req = engine.propose(doc)
    assert req.status == "denied" and req.decision.tier == "deny"
    events = engine.audit_events(req.id)
    assert [e.kind for e in events] == ["proposed", "decided", "denied"]
    proposed, decided, denied = (e.payload for e in events)
    assert proposed == {**_common(req), "action": doc["action"], "requester": doc["requester"],
                        "justification": "workflow test", "incident": None}
    assert decided == _decided(req, engine.warrant_lifetime(req.decision))
    assert denied == {**_common(req), "subject": "request", "reasons": list(req.decision.reasons)}
    assert len(req.decision.reasons) >= 1


def test_a_pending_proposal_waits_for_its_approval_window(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert req.status == "pending"
    assert [e.kind for e in engine.audit_events(req.id)] == ["proposed", "decided"]
    assert (req.expires_at - req.created_at).total_seconds() == req.decision.ttl_seconds


def test_an_explicit_time_is_the_proposals_time_not_the_clocks(make_engine: Callable[..., Engine]) -> None:
    # A replayed intake (an agent's queue drained later) stores when the proposal was made.
    engine = make_engine()
    at = engine.now() + timedelta(minutes=7)
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"), now=at)
    assert req.created_at == at and engine.get(req.id).created_at == at
    assert [e.at for e in engine.audit_events(req.id)] == [at, at]


def test_an_idempotency_key_stores_the_proposals_sha256_in_its_stable_spelling(
    make_engine: Callable[..., Engine]
) -> None:
    # The stored hash is compared with a retry's, possibly by a later version of hitlgate: its spelling
    # ("sha256:" and the digest of the canonical proposal) is a stored format, not a detail.
    engine = make_engine()
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, replayed = engine.propose_once(doc, idempotency=("agent-7", "key-1"))
    assert not replayed
    with engine.store.engine.connect() as conn:
        row = conn.execute(sa.select(t.idempotency_keys)).mappings().one()
    expected = "sha256:" + hashlib.sha256(canonical_json(Proposal.from_dict(doc).to_dict())).hexdigest()
    assert (row["principal"], row["key"], row["request_id"], row["proposal_hash"]) == ("agent-7", "key-1", req.id,
                                                                                       expected)
    again, replayed = engine.propose_once(doc, idempotency=("agent-7", "key-1"))
    assert replayed and again.id == req.id


def test_a_retry_that_lands_while_the_first_attempt_decides_is_a_replay(
    make_engine: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two attempts with one key: the second commits while the first is deciding. The first, once it holds
    # the write lock, finds the key taken and answers with that request, as a replay.
    first, second = make_engine(), make_engine()
    doc = proposal("suspend_service_account", "svc-ci-runner")
    key = ("agent-7", "key-1")
    decide = first.decider.decide_validated
    landed: list[str] = []

    def decide_while_the_retry_lands(p: Any) -> Any:
        if not landed:  # The engines share one decider: the retry itself decides unhindered.
            landed.append("")
            landed[0] = second.propose_once(doc, idempotency=key)[0].id
        return decide(p)

    monkeypatch.setattr(first.decider, "decide_validated", decide_while_the_retry_lands)
    req, replayed = first.propose_once(doc, idempotency=key)
    assert replayed and [req.id] == landed
    assert [r.id for r in first.list()] == landed

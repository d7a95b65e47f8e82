"""Threat: someone with database write access rewrites a stored request's tier.

Before the fix, a request rewritten deny -> auto_allow, or dual -> single,
still got a signed warrant from ``hitlgate warrant``; only the guard's
re-evaluation refused it later. A warrant is evidence for third parties who
may check it with the JWKS alone, so the engine now re-evaluates the policy
on the stored proposal when it issues one, and refuses unless the policy
gives the stored tier now, counting approvals against today's quorum.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import ApprovalError
from tests.workflow._helpers import T0, proposal, vote


def _rewrite(engine: Engine, request_id: str, *, tier: str, quorum: dict[str, Any], status: str | None = None) -> None:
    with engine.store.engine.begin() as conn:
        text = conn.execute(sa.select(t.requests.c.decision).where(t.requests.c.id == request_id)).scalar_one()
        decision = json.loads(text)
        decision.update(tier=tier, quorum=quorum)
        if tier != "deny":
            # Durations a tier with a warrant may have, so the row reads back as a decision.
            decision.update(ttl_seconds=decision["ttl_seconds"] or 300,
                            warrant_ttl_seconds=decision.get("warrant_ttl_seconds") or 300)
        values: dict[str, Any] = {"tier": tier, "decision": json.dumps(decision, sort_keys=True)}
        if status is not None:
            # A careful attacker also reopens the approval window.
            values.update(status=status, expires_at=T0 + timedelta(hours=1))
        conn.execute(t.requests.update().where(t.requests.c.id == request_id).values(**values))


def test_deny_rewritten_to_auto_allow_gets_no_warrant(engine: Engine) -> None:
    req = engine.propose(proposal("revoke_secret", "root-ca-key"))
    assert req.status == "denied"
    _rewrite(engine, req.id, tier="auto_allow", quorum={"required": 0, "slots": []}, status="granted")
    with pytest.raises(ApprovalError, match=r"stored as auto_allow, but the policy now gives deny .*no warrant is "
                                            r"issued") as exc:
        engine.warrant(req.id)
    assert exc.value.code == "tier_mismatch"
    with engine.store.read() as tx:
        assert tx.warrant_for(req.id) is None


def test_dual_rewritten_to_single_gets_no_warrant(engine: Engine) -> None:
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    assert req.tier == "dual_approval"
    _rewrite(engine, req.id, tier="single_approval",
             quorum={"required": 1, "slots": [{"roles": ["security"], "teams": []}]})
    req = vote(engine, req, "grace")
    assert req.status == "granted"  # The rewritten stored quorum is met ...
    reasons = engine.get(req.id).decision.reasons  # The policy's own, unchanged by the rewrite.
    assert len(reasons) >= 2
    whole = (f"request {req.id} is stored as single_approval, but the policy now gives dual_approval for its stored "
             f"proposal ({'; '.join(reasons)}); no warrant is issued. The policy or inventory changed since it was "
             "proposed (propose again), or the stored request was changed in the database")
    with pytest.raises(ApprovalError) as exc:
        engine.warrant(req.id)  # ... but no warrant is signed for it.
    assert str(exc.value) == whole and exc.value.code == "tier_mismatch"
    with engine.store.read() as tx:
        assert tx.warrant_for(req.id) is None


def test_weakened_stored_quorum_is_not_what_the_warrant_counts(engine: Engine) -> None:
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    _rewrite(engine, req.id, tier="dual_approval",
             quorum={"required": 2, "slots": [{"roles": ["security"], "teams": []}]})
    vote(engine, req, "alice")
    req = vote(engine, req, "grace")
    assert req.status == "granted"
    with pytest.raises(ApprovalError, match="quorum no longer met: 1 of 2 approvals; missing: a member of "
                                            "team-payments"):
        engine.warrant(req.id)


def test_denied_request_rewritten_to_granted_gets_no_warrant(engine: Engine) -> None:
    # Only the status is rewritten: the stored tier, the stored decision and the policy all still say deny.
    req = engine.propose(proposal("revoke_secret", "root-ca-key"))
    assert (req.status, req.tier) == ("denied", "deny")
    with engine.store.engine.begin() as conn:
        conn.execute(t.requests.update().where(t.requests.c.id == req.id).values(
            status="granted", expires_at=T0 + timedelta(hours=1)))
    with pytest.raises(ApprovalError, match=rf"^request {req.id} is denied, by its stored decision and by the policy "
                                            r"now; a denied action gets no warrant\. Its status was changed in the "
                                            r"database$") as exc:
        engine.warrant(req.id)
    assert exc.value.code == "tier_mismatch"
    with engine.store.read() as tx:
        assert tx.warrant_for(req.id) is None

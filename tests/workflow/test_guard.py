"""The executor guard's three interfaces and the outcomes it records."""

from __future__ import annotations

import pytest

from hitlgate.engine import Config
from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import InvalidWarrant
from tests.workflow._helpers import granted_warrant, proposal


def test_context_manager_records_executed(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    with engine.guard().authorize(token, doc["action"]) as grant:
        assert grant.request_id == req.id and grant.tier == "single_approval"
    assert engine.get(req.id).status == "executed"


def test_failure_and_interruption_are_recorded(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    with pytest.raises(KeyboardInterrupt, match="^$"), engine.guard().authorize(token, doc["action"]):
        raise KeyboardInterrupt
    assert engine.get(req.id).status == "execution_unknown"
    doc2 = proposal("suspend_service_account", "svc-reporting")
    req2, token2 = granted_warrant(engine, doc2, ("frank",))
    with pytest.raises(ValueError, match="api said no"), engine.guard().authorize(token2, doc2["action"]):
        raise ValueError("api said no")
    after = engine.get(req2.id)
    assert after.status == "execution_failed" and "api said no" in after.status_reason
    kinds = [e.kind for e in engine.audit_events(req2.id)]
    assert kinds[-2:] == ["consumed", "execution_failed"]


def test_decorator_wraps_a_tool_in_one_line(engine):
    doc = proposal("rotate_api_key", "dev-analytics-key", grace_seconds=30)
    req = engine.propose(doc)
    token = engine.warrant(req.id).token
    guard = engine.guard()

    @guard.tool("rotate_api_key")
    def rotate(target: str, grace_seconds: int = 0) -> str:
        return f"rotated {target} with {grace_seconds}s grace"

    with pytest.raises(InvalidWarrant, match="without a warrant"):
        rotate("dev-analytics-key", grace_seconds=30)
    assert rotate("dev-analytics-key", grace_seconds=30, warrant=token) == "rotated dev-analytics-key with 30s grace"
    assert engine.get(req.id).status == "executed"


def test_check_does_not_consume(engine):
    doc = proposal("rotate_api_key", "dev-analytics-key")
    req = engine.propose(doc)
    token = engine.warrant(req.id).token
    guard = engine.guard()
    guard.check(token, doc["action"])
    guard.check(token, doc["action"])
    assert guard.execute(token, doc["action"], lambda a: "done") == "done"


def test_warrant_from_another_engine_is_refused(engine, tmp_path):
    other = Engine(Config(state_url=f"sqlite:///{tmp_path / 'other.db'}", key_dir=tmp_path / "other-keys"),
                   engine.decider)
    doc = proposal("rotate_api_key", "dev-analytics-key")
    token = other.warrant(other.propose(doc).id).token
    with pytest.raises(InvalidWarrant, match="kid"):
        engine.guard().execute(token, doc["action"], lambda a: None)
    other.store.close()


def test_warrant_not_yet_valid_and_expired_at_guard_clock(engine, clock):
    doc = proposal("rotate_api_key", "dev-analytics-key")
    req = engine.propose(doc)
    token = engine.warrant(req.id).token
    guard = engine.guard()
    with pytest.raises(InvalidWarrant, match="not yet valid"):
        guard.check(token, doc["action"], now=clock.now.replace(year=2024))
    clock.advance(engine.config.warrant_ttl_seconds)
    with pytest.raises(InvalidWarrant, match="expired"):
        guard.execute(token, doc["action"], lambda a: None)


def test_garbage_token_is_refused_and_audited(engine):
    doc = proposal("rotate_api_key", "dev-analytics-key")
    with pytest.raises(InvalidWarrant, match="invalid warrant: header is not strict base64url"):
        engine.guard().execute("not.a.token", doc["action"], lambda a: None)
    last = engine.audit_events()[-1]
    assert last.payload["subject"] == "warrant" and "invalid warrant" in last.payload["reason"]


def test_consumed_but_never_reported_becomes_execution_unknown(engine, clock):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    engine.guard().consume(token, doc["action"])  # The executor dies before reporting.
    assert engine.expire_due() == []
    # Ten minutes of grace after the warrant's own expiry (its tier's lifetime, from the policy).
    clock.advance(req.decision.warrant_ttl_seconds + 9 * 60)
    assert engine.expire_due() == []
    clock.advance(2 * 60)
    assert [r.status for r in engine.expire_due()] == ["execution_unknown"]


def test_outcome_cannot_be_recorded_for_an_unconsumed_warrant(engine):
    # An executor that skips the guard must not be able to write
    # "executed" into the lifecycle and the audit chain afterwards: an
    # outcome belongs to a warrant the guard consumed.
    from hitlgate.engine.approve.guard import Grant
    from hitlgate.errors import IllegalTransition

    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    guard = engine.guard()
    claims = guard.check(token, doc["action"])
    fake = Grant(request_id=req.id, jti=claims.jti, tier=claims.tier, action=doc["action"],
                 action_digest=claims.action_digest, claims=claims, consumed_at=engine.now())
    with pytest.raises(IllegalTransition, match="consumed"):
        guard.record(fake, "executed", "completed")
    assert engine.get(req.id).status == "granted"
    assert "executed" not in [e.kind for e in engine.audit_events(req.id)]
    # The real path still works afterwards.
    assert guard.execute(token, doc["action"], lambda a: "ok") == "ok"
    assert engine.get(req.id).status == "executed"

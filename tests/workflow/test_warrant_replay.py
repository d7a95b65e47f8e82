"""Threat: a warrant is presented a second time (replayed) to run the action again."""

from __future__ import annotations

import pytest

from hitlgate.errors import IllegalTransition, InvalidWarrant
from tests.workflow._helpers import granted_warrant, proposal


def test_second_use_of_a_warrant_is_refused(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    guard = engine.guard()
    runs = []
    guard.execute(token, doc["action"], runs.append)
    with pytest.raises(InvalidWarrant, match="already used"):
        guard.execute(token, doc["action"], runs.append)
    assert len(runs) == 1
    assert engine.get(req.id).status == "executed"


def test_replay_is_refused_even_when_the_first_run_failed(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    guard = engine.guard()

    def boom(_action):
        raise RuntimeError("executor down")

    with pytest.raises(RuntimeError, match="executor down"):
        guard.execute(token, doc["action"], boom)
    assert engine.get(req.id).status == "execution_failed"
    with pytest.raises(InvalidWarrant, match=r"already used \(replay\)") as err:
        guard.execute(token, doc["action"], lambda a: None)
    assert err.value.code == "replay"


def test_warrant_cannot_be_reissued_after_use(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    engine.guard().execute(token, doc["action"], lambda a: None)
    with pytest.raises(IllegalTransition, match=f"request {req.id} is executed; no warrant can be issued for it"):
        engine.warrant(req.id)


def test_replay_refusal_is_in_the_audit_log(engine):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    guard = engine.guard()
    guard.execute(token, doc["action"], lambda a: None)
    with pytest.raises(InvalidWarrant, match=r"already used \(replay\)") as err:
        guard.execute(token, doc["action"], lambda a: None)
    assert err.value.code == "replay"
    refusals = [e for e in engine.audit_events(req.id) if e.payload.get("subject") == "warrant"]
    assert refusals and "already used" in refusals[-1].payload["reason"]
    kinds = [e.kind for e in engine.audit_events(req.id)]
    assert kinds.count("consumed") == 1 and kinds.count("executed") == 1
    engine.verify_audit()


def test_replay_is_audited_on_its_request_with_the_digest_presented(engine):
    # The refusal's audit event is the record an investigator reads: it must sit on the request the
    # warrant names and say which action was presented with it.
    from hitlgate.engine.decide.proposal import action_digest
    from hitlgate.engine.ledger.auditlog import REFUSAL_KIND

    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    guard = engine.guard()
    guard.execute(token, doc["action"], lambda a: None)
    with pytest.raises(InvalidWarrant, match=r"already used \(replay\)"):
        guard.execute(token, doc["action"], lambda a: None)
    refusal = engine.audit_events(req.id)[-1]
    assert (refusal.kind, refusal.request_id) == (REFUSAL_KIND, req.id)
    assert refusal.payload["subject"] == "warrant"
    assert refusal.payload["presented_digest"] == action_digest(doc["action"]) == req.action_digest


def test_refusal_naming_a_request_the_store_does_not_have_keeps_the_id(engine):
    # A warrant for a request id this store never held (another deployment's, or its rows deleted):
    # the refusal is still recorded under the id presented, so an investigator can search for it.
    from hitlgate.engine.ledger.auditlog import REFUSAL_KIND

    engine.audit_log.record_refusal("invalid warrant: unknown request", request_id="req-ghost",
                                    detail={"presented_digest": "sha256:" + "0" * 64}, now=engine.now())
    refusal = engine.audit_events()[-1]
    assert (refusal.kind, refusal.request_id) == (REFUSAL_KIND, "req-ghost")
    assert refusal.payload["reason"] == "invalid warrant: unknown request"
    engine.verify_audit()

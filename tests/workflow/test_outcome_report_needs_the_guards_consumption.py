"""A remote executor's outcome report (``Guard.report``, the service's ``POST .../outcome``).

An outcome follows a consumption by the guard (lifecycle rule 3): a report
for a warrant the guard never consumed, for another request's warrant, or
with an outcome that is not one of the three, is refused and nothing is
written; a good report moves the request and is an audit event.
"""

from __future__ import annotations

import re

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import IllegalTransition, InputError
from tests.workflow._helpers import granted_warrant, proposal


def test_report_without_the_guards_consumption_is_refused(engine: Engine) -> None:
    req, token = granted_warrant(engine, proposal("suspend_service_account", "svc-ci-runner"), ("carol",))
    jti = engine.warrant(req.id).jti
    events = len(engine.audit_events())
    with pytest.raises(IllegalTransition, match="^" + re.escape(
            f"request {req.id}: no outcome can be recorded, warrant {jti} was not consumed by the guard") + "$"):
        engine.guard().report(req.id, jti, "executed")
    assert engine.get(req.id).status == "granted" and len(engine.audit_events()) == events


def test_report_naming_another_warrant_is_refused(engine: Engine) -> None:
    req, token = granted_warrant(engine, proposal("suspend_service_account", "svc-ci-runner"), ("carol",))
    guard = engine.guard()
    guard.consume(token, proposal("suspend_service_account", "svc-ci-runner")["action"])
    with pytest.raises(IllegalTransition, match="warrant jti-forged was not consumed by the guard$"):
        guard.report(req.id, "jti-forged", "executed")
    assert engine.get(req.id).status == "granted"


def test_unknown_outcome_is_refused_by_name(engine: Engine) -> None:
    req, token = granted_warrant(engine, proposal("suspend_service_account", "svc-ci-runner"), ("carol",))
    with pytest.raises(InputError, match=r"^outcome: 'done' is not one of executed, execution_failed, "
                                         r"execution_unknown$"):
        engine.guard().report(req.id, engine.warrant(req.id).jti, "done")


def test_reported_outcome_moves_the_request_and_is_audited(engine: Engine) -> None:
    req, token = granted_warrant(engine, proposal("suspend_service_account", "svc-ci-runner"), ("carol",))
    guard = engine.guard()
    grant = guard.consume(token, proposal("suspend_service_account", "svc-ci-runner")["action"])
    guard.report(req.id, grant.jti, "execution_failed")
    assert engine.get(req.id).status == "execution_failed"
    last = engine.audit_events(req.id)[-1]
    assert (last.kind, last.payload["jti"], last.payload["detail"]) == ("execution_failed", grant.jti, "")
    with pytest.raises(IllegalTransition):
        guard.report(req.id, grant.jti, "executed")  # One outcome per consumption.

"""An outcome's detail never carries what would rewrite a terminal, and the guard never loses an outcome over it.

The detail becomes the request's ``status_reason``, which ``hitlgate show``
and the console print. A report (HTTP, ``hitlgate outcome``, ``Guard.report``)
with control characters is refused, naming ``detail``; the in-process guard,
whose detail is the action's exception text (often a remote API's message),
replaces them with spaces instead (as notifications show them), so the
outcome is still recorded and the action's own exception still propagates.
"""

from __future__ import annotations

import pytest

from hitlgate.errors import InputError
from tests.workflow._helpers import granted_warrant, proposal

DOC = proposal("suspend_service_account", "svc-ci-runner")


class RemoteError(Exception):
    pass


def test_an_exception_with_escapes_is_recorded_cleaned_and_still_raised(make_engine) -> None:  # noqa: ANN001
    engine = make_engine()
    req, token = granted_warrant(engine, DOC, ("carol",))

    def action(_: object) -> None:
        raise RemoteError("503 from upstream\x1b]0;PWNED\x07\u202e")

    with pytest.raises(RemoteError, match="503 from upstream"):
        engine.guard().execute(token, DOC["action"], action)
    stored = engine.get(req.id)
    assert stored.status == "execution_failed"
    assert stored.status_reason == "RemoteError: 503 from upstream ]0;PWNED  "
    event = engine.audit_events(req.id)[-1]
    assert event.kind == "execution_failed" and "\x1b" not in event.payload["detail"]


def test_a_reported_detail_with_escapes_is_refused_and_nothing_is_recorded(make_engine) -> None:  # noqa: ANN001
    engine = make_engine()
    req, token = granted_warrant(engine, DOC, ("carol",))
    guard = engine.guard()
    grant = guard.consume(token, DOC["action"])
    before = len(engine.audit_events(req.id))
    for detail in ("ok\x1b[2K", "ok\rforged", "a\u202eb"):
        with pytest.raises(InputError, match="^detail: ") as refused:
            guard.report(req.id, grant.jti, "executed", detail)
        assert refused.value.code == "invalid_outcome"
    assert len(engine.audit_events(req.id)) == before
    guard.report(req.id, grant.jti, "executed", "done\n\tall good")
    assert engine.get(req.id).status == "executed"

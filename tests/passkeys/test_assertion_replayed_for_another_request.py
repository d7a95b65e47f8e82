"""An assertion made for one request's statement signs nothing else: not another request, not a changed verdict."""

from __future__ import annotations

from hitlgate.engine.approve.workflow import Engine
from tests.passkeys.conftest import Console
from tests.workflow._helpers import proposal


def test_assertion_for_another_request_replayed(engine: Engine, console: Console) -> None:
    auth = console.enrol("alice")
    console.login(auth)
    first = engine.propose(proposal())
    second = engine.propose(proposal(note="another"))
    signed_first = console.options(first.id)
    assertion = auth.get(signed_first["publicKey"])
    # The attacker pairs the assertion with a statement for the second request.
    second_statement = console.options(second.id)["statement"]
    resp = console.post(f"/ui/api/requests/{second.id}/vote", {"statement": second_statement,
                                                                "credential": assertion})
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "passkey_invalid"
    assert "signs a different statement" in resp.json()["error"]["message"]
    # Or sends the first request's statement and assertion to the second request's route.
    moved = console.post(f"/ui/api/requests/{second.id}/vote", {"statement": signed_first["statement"],
                                                                 "credential": assertion})
    assert moved.status_code == 400 and moved.json()["error"]["code"] == "request_mismatch", moved.text
    assert engine.get(second.id).votes == ()


def test_assertion_for_an_approval_replayed_as_a_rejection(engine: Engine, console: Console) -> None:
    auth = console.enrol("alice")
    console.login(auth)
    req = engine.propose(proposal())
    opts = console.options(req.id)
    assertion = auth.get(opts["publicKey"])
    statement = {**opts["statement"], "verdict": "reject", "reason": "changed after signing"}
    resp = console.post(f"/ui/api/requests/{req.id}/vote", {"statement": statement, "credential": assertion})
    assert resp.status_code == 403 and "signs a different statement" in resp.json()["error"]["message"], resp.text
    assert engine.get(req.id).status == "pending"

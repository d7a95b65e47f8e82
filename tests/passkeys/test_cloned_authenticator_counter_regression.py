"""A cloned authenticator is caught by its signature counter: a count not above the last one seen is refused."""

from __future__ import annotations

from hitlgate.engine.approve.workflow import Engine
from tests.passkeys.conftest import Console
from tests.workflow._helpers import proposal


def test_counter_regression_cloned_authenticator(engine: Engine, console: Console) -> None:
    auth = console.enrol("alice")
    console.login(auth)  # count 1
    clone = auth.clone()  # the key extracted at count 1
    first = engine.propose(proposal())
    assert console.vote(first.id, auth).status_code == 200  # count 2
    second = engine.propose(proposal(note="second"))
    resp = console.vote(second.id, clone)  # the clone also says 2
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "passkey_counter"
    assert "went from 2 to 2" in resp.json()["error"]["message"]
    assert engine.get(second.id).votes == ()
    [record] = engine.passkeys.list("alice")
    assert record.sign_count == 2


def test_counterless_authenticator_keeps_working(engine: Engine, console: Console) -> None:
    # Many platform passkeys always report 0; that is allowed (and nothing to compare).
    auth = console.enrol("alice")
    auth.counter_step = 0
    assert console.login(auth).status_code == 200
    req = engine.propose(proposal())
    assert console.vote(req.id, auth).status_code == 200

"""A passkey touched without its PIN or biometric (UV flag clear) enrols, logs in and approves nothing."""

from __future__ import annotations

from hitlgate.engine.approve.workflow import Engine
from tests._authenticator import SoftAuthenticator
from tests.passkeys.conftest import ORIGIN, RP_ID, Console
from tests.workflow._helpers import proposal


def test_vote_without_user_verification_refused(engine: Engine, console: Console) -> None:
    auth = console.enrol("alice")
    console.login(auth)
    req = engine.propose(proposal())
    resp = console.vote(req.id, auth, uv=False)
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "passkey_invalid"
    assert "user verification was not performed" in resp.json()["error"]["message"]
    assert engine.get(req.id).votes == ()


def test_login_without_user_verification_refused(console: Console) -> None:
    auth = console.enrol("alice")
    resp = console.login(auth, uv=False)
    assert resp.status_code == 403 and "user verification was not performed" in resp.text, resp.text
    assert "set-cookie" not in resp.headers


def test_enrolment_without_user_verification_refused(engine: Engine, console: Console) -> None:
    _enrolment, token = engine.passkeys.create_enrolment("alice")
    auth = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    options = console.post("/ui/api/enroll/options", {"token": token}, csrf=False).json()["publicKey"]
    resp = console.post("/ui/api/enroll", {"token": token, "credential": auth.create(options, uv=False)}, csrf=False)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "passkey_invalid", resp.text
    assert "User verification is required" in resp.json()["error"]["message"]
    assert engine.passkeys.list("alice") == []

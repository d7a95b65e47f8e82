"""An assertion made on another site (origin) or for another relying party (RP ID) is refused."""

from __future__ import annotations

from hitlgate.engine.approve.workflow import Engine
from tests.passkeys.conftest import Console
from tests.workflow._helpers import proposal


def test_origin_mismatch(engine: Engine, console: Console) -> None:
    auth = console.enrol("alice")
    console.login(auth)
    req = engine.propose(proposal())
    resp = console.vote(req.id, auth, origin="https://hitlgate.evil.example")
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "passkey_invalid", resp.text
    assert "made on another origin" in resp.json()["error"]["message"]
    assert engine.get(req.id).votes == ()


def test_rp_id_mismatch(engine: Engine, console: Console) -> None:
    auth = console.enrol("alice")
    console.login(auth)
    req = engine.propose(proposal())
    resp = console.vote(req.id, auth, rp_id="evil.example")
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "passkey_invalid", resp.text
    assert "made for another RP ID" in resp.json()["error"]["message"]
    assert engine.get(req.id).votes == ()


def test_login_from_another_origin(console: Console) -> None:
    auth = console.enrol("alice")
    resp = console.login(auth, origin="http://127.0.0.1:9999")
    assert resp.status_code == 403 and "made on another origin" in resp.text, resp.text

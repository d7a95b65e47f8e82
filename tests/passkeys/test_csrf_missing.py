"""Cookie-authenticated POSTs need the console's CSRF header and its own Origin; every passkey POST needs the Origin."""

from __future__ import annotations

from hitlgate.engine.approve.workflow import Engine
from tests.passkeys.conftest import Console
from tests.workflow._helpers import proposal


def test_csrf_header_missing(engine: Engine, console: Console) -> None:
    console.login(console.enrol("alice"))
    req = engine.propose(proposal())
    resp = console.post(f"/ui/api/requests/{req.id}/vote/options", {"verdict": "approve"}, csrf=False)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "csrf", resp.text
    assert "X-Hitlgate-CSRF" in resp.json()["error"]["message"]
    assert console.post("/ui/api/logout", csrf=False).status_code == 403


def test_cross_site_origin_refused(engine: Engine, console: Console) -> None:
    console.login(console.enrol("alice"))
    req = engine.propose(proposal())
    for origin in ("https://evil.example", None):
        resp = console.post(f"/ui/api/requests/{req.id}/vote/options", {"verdict": "approve"}, origin=origin)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "csrf", resp.text
    login = console.post("/ui/api/login/options", {}, csrf=False, origin="https://evil.example")
    assert login.status_code == 403 and login.json()["error"]["code"] == "csrf", login.text

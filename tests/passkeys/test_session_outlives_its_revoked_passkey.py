"""Threat: a console session outlives the passkey it was signed in with.

An approver's laptop is stolen with a signed-in console; the admin revokes
the laptop's passkey (``hitlgate approvers revoke``). Before the fix the
session cookie named only the approver and an expiry, so it stayed valid for
the rest of its 8 hours: whoever held the laptop (or a copy of the cookie)
kept reading every pending request, its parameters and its votes. The
session now names the passkey it was opened with, and ends when that
passkey is revoked; the approver's other passkeys open sessions of their own.
"""

from __future__ import annotations

from hitlgate.engine.approve.workflow import Engine
from tests.passkeys.conftest import Console
from tests.workflow._helpers import proposal


def _options_status(console: Console, request_id: str) -> tuple[int, dict[str, object]]:
    resp = console.post(f"/ui/api/requests/{request_id}/vote/options", {"verdict": "approve"})
    return resp.status_code, resp.json()


def test_session_ends_when_its_passkey_is_revoked(engine: Engine, console: Console) -> None:
    laptop = console.enrol("alice")
    phone = console.enrol("alice")
    assert console.login(laptop).status_code == 200
    req = engine.propose(proposal())
    assert _options_status(console, req.id)[0] == 200
    assert console.client.get("/ui", follow_redirects=False).status_code == 200
    engine.passkeys.revoke(laptop.id)
    status, body = _options_status(console, req.id)
    assert status == 401, body
    assert "the passkey this session was signed in with is revoked" in str(body), body
    page = console.client.get("/ui", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login"), page.text
    # The other passkey still signs in.
    assert console.login(phone).status_code == 200
    assert _options_status(console, req.id)[0] == 200

"""Threats: a copied console session cookie used after its approver logged out; probing login options.

An approver logs out on a shared machine, but a copy of the session cookie
survives (another tab, a browser profile sync, a cookie stolen earlier).
The cookie is a signed value checked without the store, so before the fix
logging out only asked the browser to drop it: the copy kept working for
the rest of the session's 8 hours. Logging out now records the session as
ended, and every later use of any copy is refused.

Login options are anonymous: before the fix a body naming an approver
returned that approver's credential ids to anyone who asked.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from tests.passkeys.conftest import Console
from tests.workflow._helpers import proposal


def _options(console: Console, request_id: str) -> tuple[int, str]:
    resp = console.post(f"/ui/api/requests/{request_id}/vote/options", {"verdict": "approve"})
    return resp.status_code, resp.text


def test_copied_session_cookie_is_refused_after_logout(engine: Engine, browsers: Callable[[], Console]) -> None:
    mine, thief = browsers(), browsers()
    key = mine.enrol("alice")
    assert mine.login(key).status_code == 200
    cookie = mine.client.cookies.get("hitlgate_session")
    assert cookie
    thief.client.cookies.set("hitlgate_session", cookie, path="/ui")
    req = engine.propose(proposal())
    assert _options(thief, req.id)[0] == 200  # The copy works while the session lasts...

    out = mine.post("/ui/api/logout", {})
    assert out.status_code == 200, out.text
    status, body = _options(thief, req.id)  # ...and not after its approver logged out.
    assert status == 401, body
    assert "this console session was logged out" in body
    page = thief.client.get("/ui", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login"), page.text
    # Logging out twice, or with the ended copy, is harmless; signing in again opens a new session.
    assert thief.post("/ui/api/logout", {}).status_code == 200
    assert mine.login(key).status_code == 200
    assert _options(mine, req.id)[0] == 200
    with engine.store.read() as tx:
        ended = tx.conn.execute(sa.select(t.console_logouts.c.approver)).scalars().all()
    assert ended == ["alice"]


def test_login_options_name_no_one(engine: Engine, console: Console) -> None:
    key = console.enrol("alice")
    options = console.post("/ui/api/login/options", {}, csrf=False)
    assert options.status_code == 200, options.text
    assert options.json()["publicKey"].get("allowCredentials", []) == []
    assert key.id not in options.text
    probe = console.post("/ui/api/login/options", {"approver": "alice"}, csrf=False)
    assert probe.status_code == 400, probe.text
    assert probe.json()["error"]["code"] == "invalid_request"
    assert key.id not in probe.text

"""Threats on console logout and anonymous login options (real app, real store, real WebAuthn).

* A copy of a logged-out session cookie replayed on every console route:
  the pages and every POST API refuse it.
* Logout made while the approver is out of the inventory: before the fix
  logout only recorded sessions that were still accepted, so that logout
  recorded nothing, and once the approver was put back the copied cookie
  worked again for the rest of its eight hours.
* Logout sent cross-site (no Origin, no X-Hitlgate-CSRF): it ends nothing,
  so another site cannot log an approver out.
* Login options with a body that is not ``{}`` ([] , a bare string, deep
  nesting) and a flood of them from one address.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import ServerConfig
from hitlgate.service.app import create_app
from tests.passkeys.conftest import ORIGIN, Console
from tests.workflow._helpers import proposal

ALICE = """  alice:
    roles: [security]
    teams: [team-security]
    public_key: "ed25519:c1bpoYKeFU0Tt4ZOh16T2S5gTr_zwlnqpCqx7mhizMM"
"""


def _copy_session(src: Console, dst: Console) -> str:
    cookie = src.client.cookies.get("hitlgate_session")
    assert cookie
    dst.client.cookies.set("hitlgate_session", cookie, path="/ui")
    return cookie


def _refused_everywhere(thief: Console, request_id: str) -> None:
    for path in ("/ui", "/ui/requests", f"/ui/requests/{request_id}"):
        page = thief.client.get(path, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/ui/login"), (path, page.text)
    for path, body in ((f"/ui/api/requests/{request_id}/vote/options", {"verdict": "approve"}),
                       (f"/ui/api/requests/{request_id}/vote", {"statement": {}, "credential": {}})):
        resp = thief.post(path, body)
        assert resp.status_code == 401, (path, resp.text)
        assert "this console session was logged out" in resp.text, (path, resp.text)


def test_logged_out_cookie_is_refused_on_every_console_route(engine: Engine,
                                                              browsers: Callable[[], Console]) -> None:
    mine, thief = browsers(), browsers()
    key = mine.enrol("alice")
    assert mine.login(key).status_code == 200
    _copy_session(mine, thief)
    req = engine.propose(proposal())
    assert thief.client.get(f"/ui/requests/{req.id}", follow_redirects=False).status_code == 200
    assert mine.post("/ui/api/logout", {}).status_code == 200
    _refused_everywhere(thief, req.id)


def test_cross_site_logout_ends_nothing(engine: Engine, browsers: Callable[[], Console]) -> None:
    mine = browsers()
    key = mine.enrol("alice")
    assert mine.login(key).status_code == 200
    req = engine.propose(proposal())
    no_origin = mine.post("/ui/api/logout", {}, origin=None)
    no_header = mine.post("/ui/api/logout", {}, csrf=False)
    other_site = mine.post("/ui/api/logout", {}, origin="https://evil.example")
    for resp in (no_origin, no_header, other_site):
        assert resp.status_code == 403, resp.text
        assert "set-cookie" not in resp.headers
    assert mine.options(req.id)["statement"]  # Still signed in.


@pytest.fixture
def pack_engine(make_engine: Callable[..., Engine], pack_copy: Path) -> Engine:  # noqa: F811
    return make_engine(pack=pack_copy, config={"server": ServerConfig(public_url=ORIGIN)})


def test_logout_while_approver_out_of_inventory_stays_ended_when_restored(pack_engine: Engine,
                                                                          pack_copy: Path) -> None:  # noqa: F811
    app = create_app(pack_engine)
    with TestClient(app, base_url=ORIGIN) as a, TestClient(app, base_url=ORIGIN) as b:
        mine, thief = Console(pack_engine, a), Console(pack_engine, b)
        key = mine.enrol("alice")
        assert mine.login(key).status_code == 200
        _copy_session(mine, thief)
        req = pack_engine.propose(proposal())
        inventory = pack_copy / "data" / "inventory.yaml"
        text = inventory.read_text()
        assert text.count(ALICE) == 1
        inventory.write_text(text.replace(ALICE, ""))
        refused = thief.post(f"/ui/api/requests/{req.id}/vote/options", {"verdict": "approve"})
        assert refused.status_code == 401 and "no longer a registered approver" in refused.text, refused.text
        assert mine.post("/ui/api/logout", {}).status_code == 200  # Logs out while refused.
        inventory.write_text(text)  # Alice is put back.
        assert "alice" in pack_engine.approvers.all()
        _refused_everywhere(thief, req.id)
        assert mine.login(key).status_code == 200  # A new login still works.
        assert mine.options(req.id)["statement"]


@pytest.mark.parametrize(("body", "message"), [
    (b"[]", "login options request: must be a JSON object"),
    (b'"x"', "login options request: must be a JSON object"),
    (b"null", "login options request: must be a JSON object"),
    (b"x", "login options request"),
    (b"[" * 5000 + b"]" * 5000, "login options request"),
    (b'{"allowCredentials": [], "approver": "alice"}', r"unexpected field\(s\) allowCredentials, approver"),
])
def test_login_options_body_not_an_empty_object(console: Console, body: bytes, message: str) -> None:
    key = console.enrol("alice")
    resp = console.client.post("/ui/api/login/options", content=body,
                               headers={"Content-Type": "application/json", "Origin": ORIGIN})
    assert resp.status_code == 400, resp.text
    assert re.search(message, resp.json()["error"]["message"]), resp.text
    assert key.id not in resp.text and len(resp.text) < 2000


@pytest.fixture
def limited(make_engine: Callable[..., Engine]) -> Iterator[Console]:
    engine = make_engine(config={"server": ServerConfig(public_url=ORIGIN, rate_per_second=0.01, rate_burst=5)})
    with TestClient(create_app(engine), base_url=ORIGIN) as client:
        yield Console(engine, client)


def test_login_options_flood_from_one_address_is_rate_limited(limited: Console) -> None:
    codes = [limited.post("/ui/api/login/options", {}, csrf=False).status_code for _ in range(8)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3, codes
    import sqlalchemy as sa

    from hitlgate.engine.ledger import _store_schema as t

    with limited.engine.store.read() as tx:
        stored = tx.conn.execute(sa.select(sa.func.count()).select_from(t.webauthn_challenges)).scalar_one()
    assert stored == 5  # A refused call stores no challenge.


def test_logout_records_are_swept_once_their_cookies_expire(engine: Engine, browsers: Callable[[], Console]) -> None:
    import sqlalchemy as sa

    from hitlgate.engine.ledger import _store_schema as t

    mine = browsers()
    key = mine.enrol("alice")
    for _ in range(3):
        assert mine.login(key).status_code == 200
        assert mine.post("/ui/api/logout", {}).status_code == 200
    with engine.store.read() as tx:
        assert tx.conn.execute(sa.select(sa.func.count()).select_from(t.console_logouts)).scalar_one() == 3
    engine.clock.advance(60 * engine.config.server.session_minutes + 1)  # type: ignore[attr-defined]
    assert mine.login(key).status_code == 200
    assert mine.post("/ui/api/logout", {}).status_code == 200
    with engine.store.read() as tx:
        assert tx.conn.execute(sa.select(sa.func.count()).select_from(t.console_logouts)).scalar_one() == 1


def test_old_format_cookie_without_random_part_is_refused(engine: Engine, browsers: Callable[[], Console]) -> None:
    from hitlgate.engine.keys.keyring import b64url_encode
    from hitlgate.service import passkeys as pk

    mine = browsers()
    key = mine.enrol("alice")
    req = engine.propose(proposal())
    # Signed with the real session key, in the format before every cookie carried a random part: two
    # such cookies of one second and one passkey were the same value, so one logout would end both.
    expires = int(engine.now().timestamp()) + 600
    who = "alice\x00" + pk._passkey_tag(key.id)
    body = f"{pk._SESSION_VERSION}.{b64url_encode(who.encode())}.{expires}"
    old = f"{body}.{pk._mac(pk.session_secret(engine.config.key_dir), body)}"
    mine.client.cookies.set("hitlgate_session", old, path="/ui")
    resp = mine.post(f"/ui/api/requests/{req.id}/vote/options", {"verdict": "approve"})
    assert resp.status_code == 401 and "the console session cookie is malformed" in resp.text, resp.text

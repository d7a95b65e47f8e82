"""A console session is an HMAC-signed cookie with an expiry: forged, altered or expired ones are refused."""

from __future__ import annotations

import stat

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.keys.keyring import b64url_encode
from hitlgate.service.passkeys import SESSION_COOKIE, SESSION_KEY_FILE
from tests.passkeys.conftest import Console
from tests.workflow._helpers import FakeClock, proposal


def _options(console: Console, request_id: str) -> tuple[int, dict]:
    resp = console.post(f"/ui/api/requests/{request_id}/vote/options", {"verdict": "approve"})
    return resp.status_code, resp.json()


def test_session_cookie_forged(engine: Engine, console: Console) -> None:
    req = engine.propose(proposal())
    console.client.cookies.set(SESSION_COOKIE, f"v1.{b64url_encode(b'alice')}.99999999999.{'A' * 43}",
                               domain="127.0.0.1", path="/ui")
    status, body = _options(console, req.id)
    assert status == 401 and body["error"]["code"] == "unauthenticated", body
    assert "forged or altered" in body["error"]["message"]


def test_session_cookie_altered_to_name_someone_else(engine: Engine, console: Console) -> None:
    console.enrol("bob")
    console.login(console.authenticators["bob"])
    value = console.client.cookies[SESSION_COOKIE]
    _v, _who, expires, mac = value.split(".")
    console.client.cookies.clear()
    console.client.cookies.set(SESSION_COOKIE, f"v1.{b64url_encode(b'alice')}.{expires}.{mac}",
                               domain="127.0.0.1", path="/ui")
    status, body = _options(console, engine.propose(proposal()).id)
    assert status == 401 and "forged or altered" in body["error"]["message"], body


def test_session_cookie_expired(engine: Engine, console: Console, clock: FakeClock) -> None:
    auth = console.enrol("alice")
    assert console.login(auth).status_code == 200
    req = engine.propose(proposal())
    assert _options(console, req.id)[0] == 200
    clock.advance(engine.config.server.session_minutes * 60)
    status, body = _options(console, req.id)
    assert status == 401 and body["error"]["code"] == "session_expired", body


def test_session_key_is_private_beside_the_engine_keys(engine: Engine, console: Console) -> None:
    console.login(console.enrol("alice"))
    path = engine.config.key_dir / SESSION_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == 32


def test_session_key_readable_by_others_is_refused(engine: Engine, console: Console) -> None:
    auth = console.enrol("alice")
    console.login(auth)
    path = engine.config.key_dir / SESSION_KEY_FILE
    path.chmod(0o644)
    status, body = _options(console, engine.propose(proposal()).id)
    assert status == 403 and body["error"]["code"] == "session_key_unsafe", body

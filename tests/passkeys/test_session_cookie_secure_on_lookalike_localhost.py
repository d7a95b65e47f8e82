"""The session cookie drops ``Secure`` only on a real loopback console, never on a host that merely starts with one.

``http://localhost.example.com`` or ``http://localhost:8080@evil.example``
begin with ``http://localhost`` but are other hosts: a cookie without
``Secure`` there would travel over plain http to a name an attacker may
answer for. Only scheme http with host exactly ``localhost``, ``127.0.0.1``
or ``::1`` is local. Checked on the cookie the real app sets at login and
clears at logout.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import ServerConfig
from hitlgate.service.app import create_app
from hitlgate.service.passkeys import SESSION_COOKIE
from tests._authenticator import SoftAuthenticator
from tests.passkeys.conftest import Console

LOCAL = ["http://localhost:8080", "http://localhost", "http://127.0.0.1:8080", "http://[::1]:8080"]
NOT_LOCAL = ["http://localhost.example.com:8080", "http://localhost:8080@evil.example", "http://127.0.0.1.nip.io",
             "http://localhostevil", "https://hitlgate.example.com", "https://localhost:8443"]


def _flags(response: httpx.Response) -> list[str]:
    [cookie] = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}="), cookie
    return [part.strip().lower() for part in cookie.split(";")[1:]]


def _console(make_engine: Callable[..., Engine], origin: str) -> Console:
    engine = make_engine(config={"server": ServerConfig(public_url=origin)})
    return Console(engine, TestClient(create_app(engine), base_url="http://testserver"))


@pytest.mark.parametrize("origin", LOCAL + NOT_LOCAL)
def test_logout_cookie_is_secure_unless_the_console_is_on_loopback(make_engine: Callable[..., Engine],
                                                                   origin: str) -> None:
    console = _console(make_engine, origin)
    with console.client:
        resp = console.post("/ui/api/logout", {}, origin=origin)
    assert resp.status_code == 200, resp.text
    assert ("secure" in _flags(resp)) == (origin not in LOCAL), (origin, _flags(resp))


@pytest.mark.parametrize("origin", ["http://localhost.example.com:8080", "http://localhost:8080"])
def test_login_cookie_is_secure_on_a_lookalike_localhost(make_engine: Callable[..., Engine], origin: str) -> None:
    console = _console(make_engine, origin)
    auth = SoftAuthenticator(origin=origin, rp_id=str(urlsplit(origin).hostname))
    with console.client:
        _enrolment, token = console.engine.passkeys.create_enrolment("alice")
        options = console.post("/ui/api/enroll/options", {"token": token}, csrf=False, origin=origin)
        assert options.status_code == 200, options.text
        done = console.post("/ui/api/enroll", {"token": token, "credential": auth.create(options.json()["publicKey"])},
                            csrf=False, origin=origin)
        assert done.status_code == 200, done.text
        login_options = console.post("/ui/api/login/options", {}, csrf=False, origin=origin).json()["publicKey"]
        resp = console.post("/ui/api/login", auth.get(login_options), csrf=False, origin=origin)
    assert resp.status_code == 200, resp.text
    flags = _flags(resp)
    assert "httponly" in flags and "samesite=strict" in flags
    assert ("secure" in flags) == (origin != "http://localhost:8080"), flags

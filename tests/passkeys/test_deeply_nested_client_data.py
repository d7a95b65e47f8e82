"""Threat: a credential whose clientDataJSON is deeply nested JSON, sent to login and enrolment.

Both routes read the challenge out of the client data before anything else
checks it. Before the fix, 3,000 nested arrays (6 KB, well inside the body
limit) made that parse raise RecursionError: an HTTP 500 "bug in hitlgate"
with a traceback in the log, from an unauthenticated request. It must be
refused as bad input (400, ``invalid_credential``) like any other malformed credential.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.keys.keyring import b64url_encode
from hitlgate.service.app import create_app
from tests._authenticator import SoftAuthenticator
from tests.passkeys.conftest import ORIGIN, RP_ID, Console

DEEP = b64url_encode(("[" * 3000 + "]" * 3000).encode())


def _credential(auth: SoftAuthenticator) -> dict[str, object]:
    good = auth.get("AAAA")
    response = dict(good["response"], clientDataJSON=DEEP)
    return {**good, "response": response}


@pytest.mark.parametrize("route", ["login", "enroll"])
def test_deeply_nested_client_data_is_bad_input_not_a_crash(engine: Engine, route: str) -> None:
    client = TestClient(create_app(engine), base_url=ORIGIN, raise_server_exceptions=False)
    console = Console(engine, client)
    auth = console.enrol("alice") if route == "login" else SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    _enrolment, token = engine.passkeys.create_enrolment("bob")
    body = _credential(auth) if route == "login" else {"token": token, "credential": _credential(auth)}
    resp = console.post(f"/ui/api/{route}", body, csrf=False)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_credential", resp.text
    assert "clientDataJSON" in resp.json()["error"]["message"]
    client.close()

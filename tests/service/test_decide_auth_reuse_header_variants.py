"""Threats on ``POST /v1/decisions`` reusing a key's authentication (``server.decide_auth_seconds``).

The app in process on a real SQLite/PostgreSQL store, real API keys:

* header variants of a remembered token ("bearer", extra spaces, a second
  Authorization header, non-ASCII bytes, a very long header) never decide
  as a principal they would not authenticate as by themselves;
* every remembered call still spends from the key's rate limit;
* a remembered decision never lets the same header propose, vote, ask for a
  warrant or read once the key is revoked, and the decision endpoint itself
  refuses it once the window has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import ServerConfig
from hitlgate.engine.keys.apikeys import ApiKeys
from hitlgate.service.app import create_app
from tests.service.conftest import proposal_doc
from tests.workflow.conftest import clock, db_url, make_engine  # noqa: F401

WINDOW = 0.6
Factory = Callable[..., tuple[TestClient, ApiKeys]]


@pytest.fixture
def app_for(make_engine: Callable[..., Engine]) -> Iterator[Factory]:  # noqa: F811
    clients: list[TestClient] = []

    def make(**server: Any) -> tuple[TestClient, ApiKeys]:
        engine = make_engine(config={"server": ServerConfig(decide_auth_seconds=WINDOW, **server)})
        client = TestClient(create_app(engine))
        clients.append(client)
        return client, ApiKeys(engine)

    yield make
    for c in clients:
        c.close()


def _decide(client: TestClient, headers: Any) -> tuple[int, str]:
    r = client.post("/v1/decisions", json=proposal_doc(), headers=headers)
    return r.status_code, (r.json()["error"]["code"] if r.status_code != 200 else "decided")


def test_header_variants_never_borrow_a_remembered_principal(app_for: Factory) -> None:
    client, keys = app_for()
    _, token = keys.create("agent-a", "agent")
    _, viewer = keys.create("viewer-b", "viewer")  # May not decide: tells the two principals apart.
    assert _decide(client, {"Authorization": f"Bearer {token}"}) == (200, "decided")  # Now remembered.
    forged = token[:-2] + ("xy" if not token.endswith("xy") else "zw")
    for header in (f"bearer {token}", f"Bearer  {token} ", f"BEARER {token}"):
        assert _decide(client, {"Authorization": header}) == (200, "decided"), header
    refused: tuple[str | bytes, ...] = (
        f"Bearer {forged}", f"Bearer {token}\u00e9".encode("latin-1"), f"Basic {token}", f"Bearer{token}",
        f"Bearer {token}" + "A" * 6000, "Bearer ", f"Bearer {token[:-1]}")
    for bad in refused:
        status, code = _decide(client, {"Authorization": bad})
        assert (status, code) == (401, "unauthenticated"), bad[:80]
    # Two Authorization headers: the first is the one authenticated, whether or not it is remembered.
    assert _decide(client, [("Authorization", f"Bearer {viewer}"), ("Authorization", f"Bearer {token}")]) == (
        403, "forbidden")
    assert _decide(client, [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {viewer}")]) == (
        200, "decided")
    assert _decide(client, [("Authorization", f"Bearer {forged}"), ("Authorization", f"Bearer {token}")]) == (
        401, "unauthenticated")


def test_remembered_calls_still_spend_the_rate_limit(app_for: Factory) -> None:
    client, keys = app_for(rate_per_second=0.01, rate_burst=3)
    _, token = keys.create("agent-a", "agent")
    codes = [_decide(client, {"Authorization": f"Bearer {token}"})[0] for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_remembered_decision_never_acts_after_revocation(app_for: Factory) -> None:
    client, keys = app_for()
    _, token = keys.create("agent-a", "agent")
    headers = {"Authorization": f"Bearer {token}"}
    assert _decide(client, headers) == (200, "decided")
    keys.revoke("agent-a")
    for method, path, body in (("POST", "/v1/requests", proposal_doc()), ("GET", "/v1/requests", None),
                               ("POST", "/v1/requests/r-1/votes", {}), ("GET", "/v1/requests/r-1/warrant", None),
                               ("POST", "/v1/warrants/verify", {}), ("POST", "/v1/requests/r-1/outcome", {}),
                               ("POST", "/v1/requests/r-1/revoke", {})):
        r = client.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, (path, r.text)
    time.sleep(WINDOW + 0.1)
    assert _decide(client, headers) == (401, "unauthenticated")

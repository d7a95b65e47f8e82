"""Fixtures of the passkey tests: the real app in process on a real store (SQLite and PostgreSQL), real WebAuthn.

Each test gets an engine on a fresh database (the workflow tests' ``db_url``
fixture: a SQLite file, then a throwaway PostgreSQL database) with
``server.public_url`` set, the service app on it, and :class:`Console`
clients that speak to the passkey routes as the console's script does. The
passkeys are :class:`tests._authenticator.SoftAuthenticator` instances.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import ServerConfig
from hitlgate.service.app import create_app
from tests._authenticator import SoftAuthenticator

# The workflow tests' store fixtures (a conftest's fixtures are only visible below its directory).
from tests.workflow.conftest import clock, db_url, make_engine  # noqa: F401

ORIGIN = "http://127.0.0.1:8080"
RP_ID = "127.0.0.1"


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:  # noqa: F811 - the imported fixture
    """An engine on the bundled pack and the test database, serving passkeys on :data:`ORIGIN`."""
    return make_engine(config={"server": ServerConfig(public_url=ORIGIN)})


@dataclass
class Console:
    """One browser: its own cookie jar, talking to the passkey routes like the console's script."""

    engine: Engine
    client: TestClient
    authenticators: dict[str, SoftAuthenticator] = field(default_factory=dict)

    def post(self, path: str, body: Any = None, *, csrf: bool = True, origin: str | None = ORIGIN) -> httpx.Response:
        """POST JSON with the console's headers (``csrf``/``origin`` False/None leave them out)."""
        headers = {"Content-Type": "application/json"}
        if csrf:
            headers["X-Hitlgate-CSRF"] = "1"
        if origin is not None:
            headers["Origin"] = origin
        return self.client.post(path, json=body, headers=headers)

    def enrol(self, name: str, *, alg: str = "es256") -> SoftAuthenticator:
        """Enrol a new passkey for ``name`` through a one-time link, as the enrolment page does."""
        _enrolment, token = self.engine.passkeys.create_enrolment(name)
        auth = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID, alg=alg)
        options = self.post("/ui/api/enroll/options", {"token": token}, csrf=False)
        assert options.status_code == 200, options.text
        done = self.post("/ui/api/enroll", {"token": token, "credential": auth.create(options.json()["publicKey"])},
                         csrf=False)
        assert done.status_code == 200, done.text
        assert done.json() == {"approver": name, "credential_id": auth.id}
        self.authenticators[name] = auth
        return auth

    def login(self, auth: SoftAuthenticator, **faults: Any) -> httpx.Response:
        """Log in with ``auth`` (``faults`` go to the authenticator: uv, origin, rp_id)."""
        options = self.post("/ui/api/login/options", {}, csrf=False).json()["publicKey"]
        return self.post("/ui/api/login", auth.get(options, **faults), csrf=False)

    def options(self, request_id: str, verdict: str = "approve", reason: str | None = None) -> dict[str, Any]:
        """The vote options (statement, canonical text, request options) for the session's approver."""
        body: dict[str, Any] = {"verdict": verdict}
        if reason is not None:
            body["reason"] = reason
        resp = self.post(f"/ui/api/requests/{request_id}/vote/options", body)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def vote(self, request_id: str, auth: SoftAuthenticator, verdict: str = "approve", reason: str | None = None,
             **faults: Any) -> httpx.Response:
        """Sign the vote options with ``auth`` and submit them."""
        opts = self.options(request_id, verdict, reason)
        credential = auth.get(opts["publicKey"], **faults)
        return self.post(f"/ui/api/requests/{request_id}/vote", {"statement": opts["statement"],
                                                                  "credential": credential})


def browsers_on(engine: Engine) -> Iterator[Callable[[], Console]]:
    """Make browsers (one cookie jar each) on one app serving ``engine``; for a fixture to ``yield from``."""
    app = create_app(engine)
    clients: list[TestClient] = []

    def make() -> Console:
        client = TestClient(app, base_url=ORIGIN)
        clients.append(client)
        return Console(engine, client)

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def browsers(engine: Engine) -> Iterator[Callable[[], Console]]:
    """Make browsers (one cookie jar each) on one app serving ``engine``."""
    yield from browsers_on(engine)


@pytest.fixture
def console(browsers: Callable[[], Console]) -> Console:
    """One browser."""
    return browsers()

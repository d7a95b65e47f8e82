"""Fixtures of the service tests: one real project (real approver keys), one real server, real API keys.

The server is a ``hitlgate serve`` subprocess on the project's SQLite store,
shared by the session (starting one costs a policy compile); every test
makes its own requests, so tests do not depend on each other's state. API
keys are created with the real CLI (``hitlgate apikey create``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hitlgate.engine.approve.approvals import SignedStatement, Statement, sign
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import Config
from hitlgate.engine.keys.apikeys import ApiKeys
from hitlgate.engine.keys.keyring import load_approver_key
from hitlgate.service.app import create_app
from tests.cli_project import Project, make_project
from tests.service._server import running_server

#: The API keys the session creates: principal name -> role.
PRINCIPALS = {
    "soc-agent-7": "agent",
    "other-agent": "agent",
    "carol": "agent",  # An approver who also runs an agent: the self-approval cases.
    "exec-1": "executor",
    "viewer-1": "viewer",
    "admin-1": "admin",
}


@dataclass
class Service:
    """A running server on a project, and a token per principal."""

    project: Project
    url: str
    tokens: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def signed(self, request: dict[str, Any], who: str, verdict: str = "approve") -> dict[str, Any]:
        """``who``'s signed statement on ``request`` (their real key from the project)."""
        statement = Statement(request["id"], request["action_digest"], verdict, who, datetime.now(UTC))  # type: ignore[arg-type]
        signed: SignedStatement = sign(statement, load_approver_key(self.project.keys[who]))
        return signed.to_dict()


def create_key(project: Project, name: str, role: str) -> str:
    """Create an API key with the real CLI; return its token."""
    result = project.invoke(["apikey", "create", name, "--role", role, "--json"])
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["token"])


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A real server on a fresh project, with a key for each of :data:`PRINCIPALS`."""
    tmp = tmp_path_factory.mktemp("service")
    project = make_project(tmp)
    # Schemathesis sends a few hundred requests in seconds with one key; the
    # per-key and per-address limits have their own tests (test_api_bad_input.py, test_unauthenticated_flood.py).
    with project.config.open("a") as f:
        f.write("server:\n  rate_per_second: 10000\n  rate_burst: 10000\n  auth_failures_per_second: 10000\n"
                "  auth_failure_burst: 10000\n")
    tokens = {name: create_key(project, name, role) for name, role in PRINCIPALS.items()}
    with running_server(project.config, log=tmp / "serve.log") as url:
        yield Service(project=project, url=url, tokens=tokens)


def proposal_doc(action: str = "suspend_service_account", target: str = "svc-ci-runner") -> dict[str, Any]:
    """A proposal body without a requester (the API key's principal is the requester)."""
    return {"action": {"type": action, "target": target, "parameters": {}}, "justification": "service test"}


def viewer_gets(tmp_path: Path, paths: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """GET each path as a viewer key on a fresh app and store holding one request (``{id}`` is its id)."""
    config = Config(state_url=f"sqlite:///{tmp_path / 'state.db'}", key_dir=tmp_path / "keys")

    async def run() -> list[tuple[int, dict[str, Any]]]:
        with Engine(config) as engine:
            _, token = ApiKeys(engine).create("viewer-1", "viewer")
            _, agent = ApiKeys(engine).create("soc-agent-7", "agent")
            app = create_app(engine)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as c:
                made = await c.post("/v1/requests", json=proposal_doc(), headers={"Authorization": f"Bearer {agent}"})
                assert made.status_code == 201, made.text
                out = []
                for path in paths:
                    r = await c.get(path.replace("{id}", made.json()["id"]),
                                    headers={"Authorization": f"Bearer {token}"})
                    out.append((r.status_code, r.json()))
                return out

    return asyncio.run(run())

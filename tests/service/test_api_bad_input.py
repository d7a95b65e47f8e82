"""Hostile or broken requests get a JSON 4xx with a stable code, never a 500 or a traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import Config, ServerConfig
from hitlgate.engine.keys.apikeys import ApiKeys
from hitlgate.service.app import create_app
from tests.service.conftest import Service, proposal_doc


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    err: dict[str, Any] = response.json()["error"]
    return err


def test_malformed_oversized_and_deep_bodies(service: Service) -> None:
    h = {**service.headers("soc-agent-7"), "content-type": "application/json"}
    post = service.url + "/v1/requests"
    assert _error(httpx.post(post, content=b"{not json", headers=h), 400)["code"] == "invalid_proposal"
    assert _error(httpx.post(post, content=b"", headers=h), 400)["code"] == "invalid_json"
    assert _error(httpx.post(post, content=b"[1,2]", headers=h), 400)["code"] == "invalid_proposal"
    err = _error(httpx.post(post, content=b"[" * 100 + b"]" * 100, headers=h), 400)
    assert "nest" in err["message"] or "deep" in err["message"]
    big = b'{"justification": "' + b"x" * 300_000 + b'"}'
    err = _error(httpx.post(post, content=big, headers=h), 413)
    assert err["code"] == "input_too_large" and len(err["message"]) < 300
    bad = {**proposal_doc(), "action": {"type": "launch_missiles", "target": "svc-ci-runner", "parameters": {}}}
    err = _error(httpx.post(post, json=bad, headers=h), 400)
    assert err["code"] == "invalid_proposal" and any(p.startswith("action.type") for p in err["problems"])


def test_bad_queries_routes_and_methods(service: Service) -> None:
    h = service.headers("viewer-1")
    err = _error(httpx.get(service.url + "/v1/requests", params={"limit": 0}, headers=h), 400)
    assert err["code"] == "invalid_request"
    # The message says what to fix, like every invalid-input message (not just "1 problem(s)").
    assert err["message"] == f"invalid request: 1 problem(s)\n  - {err['problems'][0]}"
    assert err["problems"][0].startswith("query.limit: ")
    assert _error(httpx.get(service.url + "/v1/requests", params={"cursor": "x"}, headers=h), 400)["code"] == (
        "invalid_query")
    assert _error(httpx.get(service.url + "/v1/requests", params={"since": "yesterday"}, headers=h), 400)["code"] == (
        "invalid_query")
    assert _error(httpx.get(service.url + "/v1/nothing-here", headers=h), 404)["code"] == "not_found"
    assert _error(httpx.delete(service.url + "/v1/requests", headers=h), 405)["code"] == "method_not_allowed"
    body = {"warrant": "x.y.z", "action": {"type": "rotate_api_key"}, "extra": 1}
    err = _error(httpx.post(service.url + "/v1/warrants/verify", json=body, headers=service.headers("exec-1")), 400)
    assert err["code"] == "invalid_verify_request" and "extra: unknown field" in err["problems"]
    garbage = {"warrant": "x.y.z", "action": {"type": "rotate_api_key", "target": "t", "parameters": {}}}
    err = _error(httpx.post(service.url + "/v1/warrants/verify", json=garbage, headers=service.headers("exec-1")), 403)
    assert err["code"] != "internal"


def test_one_key_flooding_is_rate_limited(tmp_path: Path) -> None:
    config = Config(state_url=f"sqlite:///{tmp_path / 'state.db'}", key_dir=tmp_path / "keys",
                    server=ServerConfig(rate_per_second=0.001, rate_burst=3))

    async def flood() -> list[int]:
        with Engine(config) as engine:
            _, token = ApiKeys(engine).create("flooder", "viewer")
            _, other = ApiKeys(engine).create("honest", "viewer")
            app = create_app(engine)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hitlgate") as c:
                codes = [(await c.get("/v1/requests", headers={"Authorization": f"Bearer {token}"})).status_code
                         for _ in range(5)]
                codes.append((await c.get("/v1/requests", headers={"Authorization": f"Bearer {other}"})).status_code)
                return codes

    assert asyncio.run(flood()) == [200, 200, 200, 429, 429, 200]

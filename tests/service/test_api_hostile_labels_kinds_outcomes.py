"""A hostile caller cannot mint metric labels, pass its agent off as another kind, or crash a handler.

Against the real ASGI app on a real SQLite store and the real policy: an
invented HTTP method and random paths must not become label values on
``/metrics``; an agent key sending ``requester.kind: human`` is refused;
bodies with the wrong JSON types (an object where a string is expected,
unhashable in a set lookup) answer 400, never 500.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import Config
from hitlgate.engine.keys.apikeys import ApiKeys
from hitlgate.service.app import create_app
from tests.service.conftest import Service, proposal_doc


def _in_app(tmp_path: Path, calls: Any) -> Any:
    config = Config(state_url=f"sqlite:///{tmp_path / 'state.db'}", key_dir=tmp_path / "keys")

    async def run() -> Any:
        with Engine(config) as engine:
            tokens = {role: ApiKeys(engine).create(f"p-{role}", role)[1] for role in ("agent", "executor", "viewer")}
            transport = httpx.ASGITransport(app=create_app(engine))
            async with httpx.AsyncClient(transport=transport, base_url="http://hitlgate") as c:
                return await calls(c, {r: {"Authorization": f"Bearer {t}"} for r, t in tokens.items()})

    return asyncio.run(run())


def test_invented_methods_and_paths_do_not_become_metric_labels(tmp_path: Path) -> None:
    async def calls(c: httpx.AsyncClient, h: dict[str, dict[str, str]]) -> str:
        for i in range(5):
            await c.request(f"X{i:05d}Y", "/v1/requests", headers=h["viewer"])
            await c.get(f"/v1/requests/no-such-{i}", headers=h["viewer"])
            await c.get(f"/random/path/{i}")
        return (await c.get("/metrics")).text

    text = _in_app(tmp_path, calls)
    assert "X00000Y" not in text and "no-such" not in text and "/random/path" not in text
    assert 'method="other",route="/v1/requests"' in text
    assert 'route="/v1/requests/{request_id}"' in text and 'route="unmatched"' in text


def test_agent_key_cannot_choose_another_requester_kind(service: Service) -> None:
    for kind in ("human", "service", 7):
        doc = {**proposal_doc(), "requester": {"kind": kind}}
        for path in ("/v1/requests", "/v1/decisions"):
            r = httpx.post(service.url + path, json=doc, headers=service.headers("soc-agent-7"))
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "requester_mismatch"
            assert "kind" in r.json()["error"]["message"]
    ok = httpx.post(service.url + "/v1/requests", json={**proposal_doc(), "requester": {"kind": "agent"}},
                    headers=service.headers("soc-agent-7"))
    assert ok.status_code == 201 and ok.json()["requester"] == "soc-agent-7", ok.text
    admin = httpx.post(service.url + "/v1/decisions", json={**proposal_doc(), "requester": {"kind": "human"}},
                       headers=service.headers("admin-1"))
    assert admin.status_code == 200, admin.text


def test_unhashable_and_wrongly_typed_fields_are_400_not_500(service: Service) -> None:
    r = httpx.post(service.url + "/v1/requests", json=proposal_doc(), headers=service.headers("soc-agent-7"))
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    ex = service.headers("exec-1")
    for body in ({"jti": "x", "outcome": {}}, {"jti": "x", "outcome": []}, {"jti": {}, "outcome": "executed"},
                 {"jti": "x", "outcome": "executed", "detail": {}}, {"jti": "x", "outcome": "executed", "detail": 3}):
        resp = httpx.post(f"{service.url}/v1/requests/{rid}/outcome", json=body, headers=ex)
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json()["error"]["code"] == "invalid_outcome"
    odd: list[Any] = [{}, [], 1, None, True]
    for value in odd:
        for body in ({"warrant": value, "action": {"type": "x"}}, {"warrant": "a.b.c", "action": value},
                     {"warrant": "a.b.c", "action": {"type": "x"}, "consume": value}):
            resp = httpx.post(service.url + "/v1/warrants/verify", json=body, headers=ex)
            assert resp.status_code in (400, 403), (body, resp.text)
        for field in ("request_id", "action_digest", "verdict", "approver", "at", "signature", "statement"):
            stmt = {**service.signed(r.json(), "alice")}
            target = stmt if field in ("signature", "statement") else stmt["statement"]
            target[field] = value
            for path in (f"/v1/requests/{rid}/votes", f"/v1/requests/{rid}/revoke"):
                resp = httpx.post(service.url + path, json=stmt, headers=service.headers("viewer-1"))
                assert 400 <= resp.status_code < 500, (field, value, resp.text)
        for body in ({"requester": value}, {"action": value}, {"justification": value},
                     {"action": {"type": value, "target": value, "parameters": value}}):
            resp = httpx.post(service.url + "/v1/requests", json={**proposal_doc(), **body},
                              headers=service.headers("soc-agent-7"))
            # An empty requester object is allowed (the key's principal fills it in).
            assert resp.status_code < 500, (body, resp.text)

"""A NUL byte or a control character in a path id or a list filter is refused before the store, on SQLite
and PostgreSQL, and no HTTP error ever carries the database URL.

On PostgreSQL a NUL in a query parameter used to fail in the driver and come
back as 503 ``storage_error`` with the DSN (user, host, port, database) in
the message. Now ids answer 404 ``not_found`` and filters 400
``invalid_query``; and a store that fails for real (the database dropped
under a running app) answers 503 with the code but not the URL.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import Config
from hitlgate.engine.keys.apikeys import ApiKeys
from hitlgate.service.app import create_app
from tests.service.conftest import proposal_doc
from tests.workflow.conftest import db_url  # noqa: F401 - SQLite and the session's PostgreSQL.


def _no_dsn(url: str, responses: list[httpx.Response]) -> None:
    parts = urlsplit(url)
    secrets = {s for s in (parts.username, parts.hostname, str(parts.port or ""), parts.path.strip("/")) if s}
    for r in responses:
        for s in secrets:
            assert s not in r.text, (s, r.request.url, r.text)


def test_nul_and_control_characters_in_ids_and_filters(db_url: str, tmp_path: Any) -> None:  # noqa: F811
    config = Config(state_url=db_url, key_dir=tmp_path / "keys")

    async def run() -> list[httpx.Response]:
        with Engine(config) as engine:
            keys = ApiKeys(engine)
            agent = {"Authorization": f"Bearer {keys.create('a', 'agent')[1]}"}
            viewer = {"Authorization": f"Bearer {keys.create('v', 'viewer')[1]}"}
            executor = {"Authorization": f"Bearer {keys.create('x', 'executor')[1]}"}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine)),
                                         base_url="http://h") as c:
                created = await c.post("/v1/requests", json=proposal_doc(), headers=agent)
                assert created.status_code == 201, created.text
                out = []
                for bad in ("req-%00x", "%01", "x" * 300, "req%20x", "req-%0A"):
                    for path, method, headers in ((f"/v1/requests/{bad}", "GET", viewer),
                                                  (f"/v1/requests/{bad}/warrant", "GET", agent),
                                                  (f"/v1/requests/{bad}/outcome", "POST", executor)):
                        r = await c.request(method, path, headers=headers, json={"jti": "j", "outcome": "executed"})
                        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
                        out.append(r)
                for name in ("target", "requester"):
                    for bad in ("a\x00b", "a\x1bb", "\x00"):
                        r = await c.get("/v1/requests", params={name: bad}, headers=viewer)
                        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_query", r.text
                        out.append(r)
                r = await c.post(f"/v1/requests/{created.json()['id']}/outcome", headers=executor,
                                 json={"jti": "j\x1b", "outcome": "executed"})
                assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_outcome", r.text
                out.append(r)
                return out

    _no_dsn(db_url, asyncio.run(run()))


@pytest.mark.postgres
def test_a_failing_store_does_not_leak_the_database_url(pg_cluster: Any, tmp_path: Any) -> None:  # noqa: F811
    url = pg_cluster.new_database()
    config = Config(state_url=url, key_dir=tmp_path / "keys")
    import psycopg

    async def run() -> list[httpx.Response]:
        with Engine(config) as engine:
            viewer = {"Authorization": f"Bearer {ApiKeys(engine).create('v', 'viewer')[1]}"}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine)),
                                         base_url="http://h") as c:
                assert (await c.get("/readyz")).status_code == 200
                with psycopg.connect(pg_cluster.admin_url(), autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE "{urlsplit(url).path.strip("/")}" WITH (FORCE)')
                ready = await c.get("/readyz")
                listed = await c.get("/v1/requests", headers=viewer)
                return [ready, listed]

    ready, listed = asyncio.run(run())
    assert ready.status_code == 503, ready.text
    assert listed.status_code in (401, 503), listed.text
    _no_dsn(url, [ready, listed])

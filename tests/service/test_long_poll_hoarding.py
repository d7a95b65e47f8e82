"""One API key cannot hoard the service with long-polls: a few ``?wait=`` at once, then 429 with ``Retry-After``.

On the real ASGI app, real SQLite store and the bundled policy: four
long-polls of one key on a pending request run together; a fifth gets 429
``rate_limited`` at once; another key is still served; after the waits end
the key may wait again. The waits do not hold the worker threads: with a
single worker thread, a plain read still answers while four polls wait.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import Config, ServerConfig
from hitlgate.engine.keys.apikeys import ApiKeys
from hitlgate.service.app import create_app
from tests.service.conftest import proposal_doc


def test_a_fifth_concurrent_long_poll_of_one_key_is_refused(tmp_path: Path) -> None:
    config = Config(state_url=f"sqlite:///{tmp_path / 'state.db'}", key_dir=tmp_path / "keys",
                    server=ServerConfig(max_waits_per_key=4, threads=1))

    async def run() -> dict[str, object]:
        with Engine(config) as engine:
            keys = ApiKeys(engine)
            agent = {"Authorization": f"Bearer {keys.create('poller', 'agent')[1]}"}
            viewer = {"Authorization": f"Bearer {keys.create('watcher', 'viewer')[1]}"}
            app = create_app(engine)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h",
                                         timeout=30) as c:
                created = await c.post("/v1/requests", json=proposal_doc(), headers=agent)
                assert created.status_code == 201, created.text
                rid = created.json()["id"]
                assert created.json()["status"] == "pending"
                url = f"/v1/requests/{rid}"
                waits = [asyncio.create_task(c.get(url, params={"wait": 2}, headers=agent)) for _ in range(4)]
                await asyncio.sleep(0.5)
                start = time.monotonic()
                fifth = await c.get(url, params={"wait": 2}, headers=agent)
                other = await c.get(url, params={"wait": 0.3}, headers=viewer)
                plain = await c.get(url, headers=agent)
                quick = time.monotonic() - start
                done = await asyncio.gather(*waits)
                again = await c.get(url, params={"wait": 0.3}, headers=agent)
                return {"fifth": fifth, "other": other.status_code, "plain": plain.status_code, "quick": quick,
                        "done": [r.status_code for r in done], "again": again.status_code}

    out = asyncio.run(run())
    fifth = out["fifth"]
    assert isinstance(fifth, httpx.Response)
    assert fifth.status_code == 429 and fifth.json()["error"]["code"] == "rate_limited", fifth.text
    assert "long-poll" in fifth.json()["error"]["message"] and int(fifth.headers["Retry-After"]) >= 1
    assert out["other"] == 200 and out["plain"] == 200 and out["done"] == [200] * 4 and out["again"] == 200
    # The other key's 0.3 s wait and the plain read ran while four waits slept, on one worker thread.
    assert isinstance(out["quick"], float) and out["quick"] < 1.5, out

"""A web page behind the same NAT cannot lock every agent and executor out through the per-address bucket.

The per-address auth-failure bucket slows down a client that keeps
presenting credentials that fail. A request that presents no credential at
all is not a guess at a secret: a page on any site can make a browser send
one (a ``text/plain`` POST without an Authorization header is a CORS simple
request), so it is refused with 401 and spends nothing. A wrong key spends
from the bucket and, once it is empty, is refused with 429; a valid key from
the same address that authenticated lately is still looked up and goes
through (keys are 256-bit random secrets: the throttle has nothing to protect
them from), while every other token from that address is refused on the
event loop, without a worker thread or a database read, so a flood of wrong
tokens cannot slow every other client down.

On the real ASGI app with a real SQLite store and the default limits
(burst 20) unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import Config, ServerConfig
from hitlgate.engine.keys.apikeys import ApiKeys
from hitlgate.service import auth
from hitlgate.service.app import create_app

NAT = ("203.0.113.9", 40000)


def _config(tmp_path: Path, **server: float) -> Config:
    return Config(state_url=f"sqlite:///{tmp_path / 'state.db'}", key_dir=tmp_path / "keys",
                  server=ServerConfig(**server))  # type: ignore[arg-type]


def test_cross_site_simple_requests_without_credentials_do_not_lock_out_valid_keys(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert config.server.auth_failure_burst == 20

    async def run() -> tuple[list[int], list[int], int, int, int]:
        with Engine(config) as engine:
            _, agent = ApiKeys(engine).create("soc-agent-7", "agent")
            _, executor = ApiKeys(engine).create("exec-1", "executor")
            app = create_app(engine)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=NAT),
                                         base_url="http://h") as c:
                # What a hostile page's fetch(..., {mode: "no-cors"}) sends: no Authorization header.
                page = [(await c.post(path, content=b"{}", headers={"content-type": "text/plain"})).status_code
                        for _ in range(15) for path in ("/v1/requests", "/v1/decisions")]
                reads = [(await c.get("/v1/requests")).status_code for _ in range(10)]
                good_agent = (await c.get("/v1/requests", headers={"Authorization": f"Bearer {agent}"})).status_code
                good_exec = (await c.get("/v1/requests", headers={"Authorization": f"Bearer {executor}"})).status_code
                # The bucket is full: a wrong key is still only a 401.
                wrong = (await c.get("/v1/requests",
                                     headers={"Authorization": "Bearer hgk_0000000000000000_" + "A" * 43})).status_code
                return page, reads, good_agent, good_exec, wrong

    page, reads, good_agent, good_exec, wrong = asyncio.run(run())
    assert page == [401] * 30 and reads == [401] * 10
    assert good_agent == 200 and good_exec == 200
    assert wrong == 401


def test_wrong_keys_are_throttled_while_a_valid_key_from_the_same_address_goes_through(tmp_path: Path) -> None:
    # A bucket that hardly refills during the test, so the counts are exact.
    config = _config(tmp_path, auth_failures_per_second=0.01, auth_failure_burst=20)

    async def run() -> tuple[list[httpx.Response], list[int], int, int, int]:
        with Engine(config) as engine:
            _, token = ApiKeys(engine).create("soc-agent-7", "agent")
            app = create_app(engine)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=NAT),
                                         base_url="http://h") as c:
                good = {"Authorization": f"Bearer {token}"}
                # The agent at work before the flood starts (it authenticated lately: "known good").
                assert (await c.get("/v1/requests", headers=good)).status_code == 200
                guesses = [await c.get("/v1/requests", headers={"Authorization": f"Bearer hgk_{i:016x}_" + "A" * 43})
                           for i in range(25)]
                after = [(await c.get("/v1/requests", headers=good)).status_code for _ in range(3)]
                decide = (await c.post("/v1/decisions", headers=good, json={
                    "action": {"type": "notify_owner", "target": "svc-ci-runner", "parameters": {}},
                    "justification": "still served"})).status_code
                garbage = (await c.get("/v1/requests", headers={"Authorization": "Bearer not-a-key"})).status_code
                # A request without a credential is still a plain 401, never a 429.
                bare = (await c.get("/v1/requests")).status_code
                return guesses, after, decide, garbage, bare

    guesses, after, decide, garbage, bare = asyncio.run(run())
    assert [r.status_code for r in guesses] == [401] * 20 + [429] * 5
    assert all(r.json()["error"]["code"] == "rate_limited" for r in guesses[20:])
    assert int(guesses[-1].headers["Retry-After"]) >= 1
    assert "client address" in guesses[-1].json()["error"]["message"]
    assert after == [200, 200, 200] and decide == 200
    assert garbage == 429 and bare == 401


def test_a_throttled_address_is_refused_without_a_lookup_but_its_known_good_key_is_looked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A flood of wrong tokens once the bucket is empty costs no worker thread and no database read;
    # the key that worked before is still looked up each time (a revoked key is refused at once).
    config = _config(tmp_path, auth_failures_per_second=0.01, auth_failure_burst=5)
    lookups: list[str] = []
    real = auth.authenticate

    def counting(keys, limiter, header):  # noqa: ANN001, ANN202
        lookups.append(header)
        return real(keys, limiter, header)

    monkeypatch.setattr(auth, "authenticate", counting)

    async def run() -> tuple[list[int], int, int, int, int]:
        with Engine(config) as engine:
            keys = ApiKeys(engine)
            _, token = keys.create("soc-agent-7", "agent")
            _, fresh = keys.create("exec-2", "executor")
            app = create_app(engine)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=NAT),
                                         base_url="http://h") as c:
                good = {"Authorization": f"Bearer {token}"}
                assert (await c.get("/v1/requests", headers=good)).status_code == 200
                flood = [(await c.get("/v1/requests", headers={"Authorization": f"Bearer hgk_{i:016x}_" + "A" * 43}
                                      )).status_code for i in range(40)]
                looked_up = len(lookups)
                still = (await c.get("/v1/requests", headers=good)).status_code
                # A valid key this replica has not seen authenticate is refused while the address is throttled.
                unseen = (await c.get("/v1/requests", headers={"Authorization": f"Bearer {fresh}"})).status_code
                keys.revoke("soc-agent-7")
                revoked = (await c.get("/v1/requests", headers=good)).status_code
                # The revoked key was looked up (and failed: a 429 now that the bucket is empty).
                assert lookups[-1] == good["Authorization"]
                return flood, looked_up, still, unseen, revoked

    flood, looked_up, still, unseen, revoked = asyncio.run(run())
    assert flood == [401] * 5 + [429] * 35
    assert looked_up == 1 + 5  # the agent's first call and the five failures before the bucket emptied
    assert still == 200 and unseen == 429 and revoked == 429

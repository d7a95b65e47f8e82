"""An unauthenticated caller cannot make the service read its body, nor flood it with bad tokens.

On the real ASGI app with a real SQLite store: a request with a missing,
unknown or revoked key is refused before a byte of its body is read (the
body is a stream that records whether it was pulled); an address that keeps
presenting bad tokens gets 429 with ``Retry-After`` for them, while a good
key is still served, from another address and from that one
(``test_auth_failure_bucket_lockout.py`` has the why).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import Config, ServerConfig
from hitlgate.engine.keys.apikeys import ApiKeys
from hitlgate.service.app import create_app
from tests.service.conftest import proposal_doc


def test_bad_tokens_are_refused_before_the_body_is_read(tmp_path: Path) -> None:
    config = Config(state_url=f"sqlite:///{tmp_path / 'state.db'}", key_dir=tmp_path / "keys")
    pulled: list[str] = []

    def body(label: str) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            pulled.append(label)
            yield b'{"justification": "' + b"x" * 1000 + b'"}'
        return gen()

    async def run() -> dict[str, int]:
        with Engine(config) as engine:
            keys = ApiKeys(engine)
            _, revoked = keys.create("gone", "agent")
            keys.revoke("gone")
            app = create_app(engine)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as c:
                codes = {}
                for label, auth in (("missing", None), ("unknown", "Bearer hgk_0000000000000000_" + "A" * 43),
                                    ("garbage", "Bearer not-a-key"), ("revoked", f"Bearer {revoked}")):
                    for path in ("/v1/decisions", "/v1/requests"):
                        headers = {"content-type": "application/json"} | ({"Authorization": auth} if auth else {})
                        r = await c.post(path, content=body(f"{label} {path}"), headers=headers)
                        codes[f"{label} {path}"] = r.status_code
                return codes

    codes = asyncio.run(run())
    assert set(codes.values()) == {401}, codes
    assert pulled == [], f"the body was read before authentication for: {pulled}"


def test_a_flood_of_bad_tokens_from_one_address_is_rate_limited(tmp_path: Path) -> None:
    config = Config(state_url=f"sqlite:///{tmp_path / 'state.db'}", key_dir=tmp_path / "keys",
                    server=ServerConfig(auth_failures_per_second=0.01, auth_failure_burst=5))

    async def run() -> tuple[list[httpx.Response], int, int]:
        with Engine(config) as engine:
            _, token = ApiKeys(engine).create("honest", "agent")
            app = create_app(engine)
            attacker = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
            honest = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
            async with httpx.AsyncClient(transport=attacker, base_url="http://h") as a, \
                    httpx.AsyncClient(transport=honest, base_url="http://h") as h:
                # The good key at work before the flood (it authenticated lately on this replica).
                assert (await a.get("/v1/requests", headers={"Authorization": f"Bearer {token}"})).status_code == 200
                flood = [await a.post("/v1/requests", json=proposal_doc(),
                                      headers={"Authorization": f"Bearer hgk_{i:016d}_" + "A" * 43})
                         for i in range(8)]
                # A good key that authenticated lately is looked up even from the flooding address.
                good_from_attacker = (await a.get("/v1/requests", headers={"Authorization": f"Bearer {token}"}))
                good = await h.get("/v1/requests", headers={"Authorization": f"Bearer {token}"})
                return flood, good_from_attacker.status_code, good.status_code

    flood, attacker_good, honest_good = asyncio.run(run())
    assert [r.status_code for r in flood] == [401] * 5 + [429] * 3
    assert all(r.json()["error"]["code"] == "rate_limited" for r in flood[5:])
    assert int(flood[-1].headers["Retry-After"]) >= 1
    assert "client address" in flood[-1].json()["error"]["message"]
    assert attacker_good == 200 and honest_good == 200

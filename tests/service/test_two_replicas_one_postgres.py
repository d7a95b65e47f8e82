"""Two ``hitlgate serve`` replicas on one throwaway PostgreSQL, hit concurrently at both.

Concurrent proposals with repeated idempotency keys, votes (the same signed
vote sent to both replicas), warrant fetches and verify-and-consume calls at
both replicas; afterwards: exactly one request per idempotency key, one
warrant per request, every vote counted once, every warrant consumed at most
once (exactly once here: one consume succeeds, the rest are ``replay``), a
long-poll on one replica ended by a vote on the other, and the audit chain
verifies. Nothing is shared between the replicas but the database and the
key directory. The same storm also runs at one ``serve --workers 2`` (two worker
processes behind one socket).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._pgcluster import PgCluster
from tests.cli_project import make_project
from tests.service._server import running_server, worker_processes
from tests.service.conftest import Service, create_key, proposal_doc

pytestmark = pytest.mark.postgres

KEYS = 6  # idempotency keys, each proposed 3 times (at alternating replicas)


async def _storm(urls: list[str], svc: Service) -> dict[str, Any]:
    agent, viewer, executor = (svc.headers(w) for w in ("soc-agent-7", "viewer-1", "exec-1"))
    replica = itertools.cycle(urls)
    async with httpx.AsyncClient(timeout=60) as c:

        async def propose(key: str, url: str) -> httpx.Response:
            return await c.post(url + "/v1/requests", json=proposal_doc(),
                                headers={**agent, "Idempotency-Key": key})

        proposals = await asyncio.gather(*(propose(f"k-{i}", next(replica)) for i in range(KEYS) for _ in range(3)))
        assert all(r.status_code in (200, 201) for r in proposals), [r.text for r in proposals]
        by_key: dict[str, set[str]] = {}
        for n, r in enumerate(proposals):
            by_key.setdefault(f"k-{n // 3}", set()).add(r.json()["id"])
        requests = {r.json()["id"]: r.json() for r in proposals}

        # A long-poll on replica 0 that a vote at replica 1 ends.
        first = next(iter(requests.values()))
        poll = asyncio.ensure_future(c.get(urls[0] + f"/v1/requests/{first['id']}", params={"wait": 30},
                                           headers=agent))
        await asyncio.sleep(0.5)

        # carol's one signed approval of each request, sent to both replicas at once.
        signed = {rid: svc.signed(req, "carol") for rid, req in requests.items()}
        votes = await asyncio.gather(*(c.post(url + f"/v1/requests/{rid}/votes", json=signed[rid], headers=viewer)
                                       for rid in requests for url in urls))
        polled = await poll
        warrants = await asyncio.gather(*(c.get(url + f"/v1/requests/{rid}/warrant", headers=agent)
                                          for rid in requests for url in urls))
        tokens = {w.json()["request_id"]: w.json() for w in warrants if w.status_code == 200}
        consumes = await asyncio.gather(*(
            c.post(url + "/v1/warrants/verify", headers=executor,
                   json={"warrant": tokens[rid]["token"], "action": requests[rid]["action"], "consume": True})
            for rid in requests for url in urls for _ in range(2)))
        final = await asyncio.gather(*(c.get(urls[1] + f"/v1/requests/{rid}", headers=agent) for rid in requests))
    return {"by_key": by_key, "votes": votes, "polled": polled, "warrants": warrants, "consumes": consumes,
            "final": [r.json() for r in final], "first": first["id"]}


@pytest.mark.parametrize("layout", ["two servers", "one server, two workers"])
def test_two_replicas_exactly_once(pg_cluster: PgCluster, tmp_path: Path, layout: str) -> None:  # noqa: F811
    """The storm at two ``serve`` processes, or at one ``serve --workers 2`` (two worker processes, one socket)."""
    project = make_project(tmp_path)
    db_url = pg_cluster.new_database()
    text = project.config.read_text()
    project.config.write_text(text.replace("state: sqlite:///state/hitlgate.db", f"state: {db_url}")
                              + "server:\n  rate_per_second: 0\n")
    tokens = {name: create_key(project, name, role)
              for name, role in (("soc-agent-7", "agent"), ("viewer-1", "viewer"), ("exec-1", "executor"))}
    if layout == "two servers":
        with running_server(project.config, log=tmp_path / "a.log") as a, \
                running_server(project.config, log=tmp_path / "b.log") as b:
            svc = Service(project=project, url=a, tokens=tokens)
            out = asyncio.run(_storm([a, b], svc))
    else:
        pids: list[int] = []
        with running_server(project.config, log=tmp_path / "w.log", workers=2, pids=pids) as url:
            assert len(worker_processes(pids[0])) == 2, (tmp_path / "w.log").read_text()
            svc = Service(project=project, url=url, tokens=tokens)
            out = asyncio.run(_storm([url, url], svc))

    # One request per idempotency key, whichever replica each attempt reached.
    assert all(len(ids) == 1 for ids in out["by_key"].values()), out["by_key"]
    ids = {next(iter(v)) for v in out["by_key"].values()}
    assert len(ids) == KEYS
    # Each signed vote counted once: one replica accepted it, the other refused the duplicate.
    accepted = [v for v in out["votes"] if v.status_code == 200]
    refused = [v for v in out["votes"] if v.status_code != 200]
    assert len(accepted) == KEYS and len(refused) == KEYS
    assert {v.status_code for v in refused} == {403}, [v.text for v in refused]
    assert out["polled"].json()["status"] == "granted"
    # One warrant per request: both replicas hand out the same token.
    per_request: dict[str, set[str]] = {}
    for w in out["warrants"]:
        assert w.status_code == 200, w.text
        per_request.setdefault(w.json()["request_id"], set()).add(w.json()["jti"])
    assert all(len(j) == 1 for j in per_request.values()) and set(per_request) == ids
    # Four consume attempts per warrant (two at each replica): exactly one succeeds.
    ok = [r for r in out["consumes"] if r.status_code == 200]
    replays = [r for r in out["consumes"] if r.status_code != 200]
    assert sorted(r.json()["request_id"] for r in ok) == sorted(ids)
    assert len(replays) == 3 * KEYS and {r.json()["error"]["code"] for r in replays} == {"replay"}, [
        r.text for r in replays]
    for req in out["final"]:
        assert len(req["votes"]) == 1 and req["warrant"]["state"] == "consumed", req
    verified = project.invoke(["--json", "audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["events"] > 0

"""The whole flow over HTTP against a real server: propose, long-poll, vote, warrant, verify-and-consume, outcome."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from hitlgate.client import Client
from hitlgate.errors import InputError, InvalidWarrant, PendingApproval
from tests.service.conftest import Service, proposal_doc


def test_flow_propose_wait_vote_warrant_consume_outcome(service: Service) -> None:
    agent = Client(service.url, api_key=service.tokens["soc-agent-7"])
    executor = Client(service.url, api_key=service.tokens["exec-1"])
    viewer = Client(service.url, api_key=service.tokens["viewer-1"])
    req = agent.propose(proposal_doc(), idempotency_key="flow-1")
    assert (req["status"], req["tier"], req["requester"]) == ("pending", "single_approval", "soc-agent-7")
    assert req["quorum_progress"]["met"] is False
    with pytest.raises(PendingApproval, match="is pending"):
        agent.warrant(req["id"])

    # A long-poll that a vote (from another connection) ends early.
    seen: dict[str, float] = {}

    def poll() -> None:
        start = time.monotonic()
        seen["status"] = agent.get(req["id"], wait=20)["status"]  # type: ignore[assignment]
        seen["took"] = time.monotonic() - start

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.5)
    after = viewer.vote(req["id"], service.signed(req, "carol"))
    waiter.join(30)
    assert after["status"] == "granted"
    assert seen["status"] == "granted" and seen["took"] < 10

    w = agent.warrant(req["id"])
    assert agent.warrant(req["id"])["jti"] == w["jti"]  # One warrant per request.
    checked = executor.verify(w["token"], req["action"])
    assert checked["consumed"] is False and checked["request_id"] == req["id"]
    consumed = executor.verify(w["token"], req["action"], consume=True)
    assert consumed["consumed"] is True
    with pytest.raises(InvalidWarrant, match="already") as replay:
        executor.verify(w["token"], req["action"], consume=True)
    assert replay.value.code == "replay"
    done = executor.report_outcome(req["id"], w["jti"], "executed", "rotated")
    assert done["status"] == "executed"
    assert done["warrant"]["state"] == "consumed" and done["warrant"]["outcome"] == "executed"

    # A retry of the first proposal returns the same request, as it stands now.
    again = httpx.post(service.url + "/v1/requests", json=proposal_doc(), headers={
        **service.headers("soc-agent-7"), "Idempotency-Key": "flow-1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == req["id"] and again.json()["status"] == "executed"
    with pytest.raises(InputError, match="for a different proposal") as conflict:
        agent.propose(proposal_doc("revoke_secret"), idempotency_key="flow-1")
    assert conflict.value.code == "idempotency_conflict"
    for c in (agent, executor, viewer):
        c.close()


def test_decide_list_jwks_readyz_and_metrics(service: Service) -> None:
    h = service.headers("soc-agent-7")
    d = httpx.post(service.url + "/v1/decisions", json=proposal_doc("rotate_api_key", "dev-analytics-key"), headers=h)
    assert d.status_code == 200 and d.json()["tier"] == "auto_allow"
    made = httpx.post(service.url + "/v1/requests", json=proposal_doc("rotate_api_key", "dev-analytics-key"), headers=h)
    assert made.status_code == 201 and made.json()["status"] == "granted"
    page = httpx.get(service.url + "/v1/requests", params={"tier": "auto_allow", "limit": 1}, headers=h).json()
    assert [r["id"] for r in page["requests"]] == [made.json()["id"]] and page["next_cursor"]
    jwks = httpx.get(service.url + "/.well-known/jwks.json").json()
    assert jwks["keys"] and all(k["kty"] == "OKP" for k in jwks["keys"])
    ready = httpx.get(service.url + "/readyz").json()
    assert ready["ok"] is True and ready["checks"]["database"].startswith("schema version")
    text = httpx.get(service.url + "/metrics").text
    assert 'hitlgate_decisions_total{backend="embedded",tier="auto_allow"}' in text
    assert "hitlgate_pending_requests" in text and "hitlgate_http_request_duration_seconds_bucket" in text

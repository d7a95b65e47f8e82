"""hitlgate.client (async here; the sync one drives test_api_flow.py) raises the library's exception types."""

from __future__ import annotations

import asyncio

import pytest

from hitlgate.client import AsyncClient
from hitlgate.engine.keys.apikeys import ApiKeyError
from hitlgate.errors import ApprovalError, NotFoundError, PendingApproval
from hitlgate.service.errors import Forbidden
from tests.service.conftest import Service, proposal_doc


def test_async_client_flow_and_errors(service: Service) -> None:
    async def run() -> None:
        async with AsyncClient(service.url, api_key=service.tokens["soc-agent-7"]) as agent, \
                AsyncClient(service.url, api_key=service.tokens["other-agent"]) as other, \
                AsyncClient(service.url, api_key=service.tokens["viewer-1"]) as viewer, \
                AsyncClient(service.url, api_key="hgk_0000000000000000_" + "x" * 43) as stranger:
            decision = await agent.decide(proposal_doc())
            assert decision["tier"] == "single_approval"
            req = await agent.propose(proposal_doc(), idempotency_key="async-1")
            still = await agent.wait(req["id"], timeout=0.3)
            assert still["status"] == "pending"
            with pytest.raises(PendingApproval, match="is pending"):
                await agent.warrant(req["id"])
            with pytest.raises(NotFoundError, match="no request with id"):
                await other.get(req["id"])
            with pytest.raises(ApiKeyError, match="unknown or revoked") as unauth:
                await stranger.list()
            assert unauth.value.code == "unauthenticated"
            with pytest.raises(Forbidden, match="may not propose"):
                await viewer.propose(proposal_doc())
            with pytest.raises(ApprovalError, match="cannot submit votes") as own:
                await agent.vote(req["id"], service.signed(req, "carol"))
            assert own.value.code == "self_approval"
            rejected = await viewer.vote(req["id"], service.signed(req, "carol", "reject"))
            assert rejected["status"] == "rejected"
            page = await agent.list(status="rejected", limit=5)
            assert req["id"] in {r["id"] for r in page["requests"]}
            assert (await agent.jwks())["keys"]

    asyncio.run(run())

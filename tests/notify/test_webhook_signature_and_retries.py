"""Standard Webhooks delivery: the signature verifies with the standard library, a tampered body does not,
and a receiver that fails twice gets the same message (same webhook-id) on the third attempt."""

from __future__ import annotations

import json
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from hitlgate.engine.notify import outbox
from hitlgate.engine.notify.dispatcher import dispatch
from hitlgate.engine.notify.settings import NotificationSettings
from tests.notify.conftest import Receiver, webhook_settings
from tests.workflow._helpers import FakeClock, proposal, vote
from tests.workflow.conftest import EngineFactory


def _engine(make_engine: EngineFactory, url: str, **extra: Any) -> Any:
    return make_engine(config={"notifications": NotificationSettings.from_dict(webhook_settings(url, **extra))})


def test_signature_verifies_with_the_standard_library(
    make_engine: EngineFactory, receiver: Receiver, webhook_secret: str, clock: FakeClock
) -> None:
    engine = _engine(make_engine, receiver.url)
    req = engine.propose(proposal())  # rotate_api_key on svc-payments-key: dual approval
    assert req.tier == "dual_approval"
    report = dispatch(engine, clock.now)
    assert (report.enqueued, report.delivered) == (1, 1)
    [got] = receiver.received
    doc = Webhook(webhook_secret).verify(got.body, got.headers)
    assert doc["type"] == "request.pending"
    data = doc["data"]
    assert data["request_id"] == req.id and data["url"].endswith(f"/ui/requests/{req.id}")
    # Addressed to the owner team from the inventory and the approvers who can fill a slot, not everyone.
    assert data["recipients"]["teams"] == ["team-payments"]
    names = [a["name"] for a in data["recipients"]["approvers"]]
    assert names == ["alice", "bob", "erin", "grace"]  # security role or team-payments; carol, dave, frank cannot.
    assert got.headers["webhook-id"].startswith("msg_")

    # The same bytes with one field changed no longer verify.
    forged = got.body.replace(b"request.pending", b"request.granted")
    with pytest.raises(WebhookVerificationError, match="No matching signature found"):
        Webhook(webhook_secret).verify(forged, got.headers)
    # Nor does the genuine body under another secret.
    with pytest.raises(WebhookVerificationError, match="No matching signature found"):
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB").verify(got.body, got.headers)


def test_each_vote_and_the_grant_are_notified_once(
    make_engine: EngineFactory, receiver: Receiver, webhook_secret: str, clock: FakeClock
) -> None:
    engine = _engine(make_engine, receiver.url)
    req = engine.propose(proposal())
    vote(engine, req, "alice")
    vote(engine, req, "bob")
    dispatch(engine, clock.now)
    dispatch(engine, clock.now)  # A second tick finds nothing new.
    events = [json.loads(r.body)["type"] for r in receiver.received]
    assert events == ["request.pending", "request.vote", "request.vote", "request.granted"]
    votes = [json.loads(r.body)["data"]["vote"] for r in receiver.received[1:3]]
    assert votes == [{"approver": "alice", "verdict": "approve"}, {"approver": "bob", "verdict": "approve"}]


def test_receiver_failing_twice_gets_the_delivery_on_the_third_try(
    make_engine: EngineFactory, receiver: Receiver, webhook_secret: str, clock: FakeClock
) -> None:
    receiver.fail_first = 2
    engine = _engine(make_engine, receiver.url, backoff_seconds=10, max_attempts=5)
    engine.propose(proposal())
    first = dispatch(engine, clock.now)
    assert (first.enqueued, first.delivered, first.retrying) == (1, 0, 1)
    # Not due yet: nothing is attempted before the backoff has passed.
    assert dispatch(engine, clock.advance(5)).retrying == 0 and receiver.calls == 1
    assert dispatch(engine, clock.advance(5)).retrying == 1  # 10 s after the first attempt.
    assert dispatch(engine, clock.advance(10)).delivered == 0 and receiver.calls == 2  # backoff doubled: 20 s.
    third = dispatch(engine, clock.advance(10))
    assert third.delivered == 1 and receiver.calls == 3
    # The same message each time: one webhook-id, so a receiver that got an attempt drops the repeat.
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    [row] = outbox.list_rows(engine.store)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 3, "")
    log = outbox.attempts_of(engine.store, row.id)
    assert [a["ok"] for a in log] == [False, False, True]
    assert "HTTP 500" in log[0]["error"]
    assert dispatch(engine, clock.advance(3600)).delivered == 0 and receiver.calls == 3

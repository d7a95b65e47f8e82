"""The Slack channel: an incoming-webhook payload with a summary and a console link, no approve button,
and agent-written text escaped so it cannot plant a link or a mention."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from hitlgate.engine.notify import outbox
from hitlgate.engine.notify.dispatcher import dispatch
from hitlgate.engine.notify.plugins import Message, Recipient
from hitlgate.engine.notify.settings import NotificationSettings
from hitlgate.engine.notify.slack import payload
from hitlgate.errors import ConfigError
from tests.notify.conftest import Receiver
from tests.workflow._helpers import T0, FakeClock, granted_warrant, proposal
from tests.workflow.conftest import EngineFactory


def _slack(url_setting: dict[str, Any]) -> NotificationSettings:
    return NotificationSettings.from_dict(
        {"channels": [{"name": "chat", "type": "slack", "settings": url_setting}], "routes": [{"channels": ["chat"]}]},
        public_url="https://hitlgate.example.com",
    )


def _walk(value: Any) -> list[Any]:
    out = [value]
    if isinstance(value, dict):
        for v in value.values():
            out += _walk(v)
    elif isinstance(value, list):
        for v in value:
            out += _walk(v)
    return out


def test_slack_payload_has_summary_and_console_link_and_no_button(
    make_engine: EngineFactory, receiver: Receiver, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HITLGATE_TEST_SLACK_URL", receiver.url)
    engine = make_engine(config={"notifications": _slack({"url_env": "HITLGATE_TEST_SLACK_URL"})})
    req = engine.propose(proposal())
    assert dispatch(engine, clock.now).delivered == 1
    [got] = receiver.received
    body = got.json()
    assert set(body) == {"text", "blocks"}
    link = f"<https://hitlgate.example.com/ui/requests/{req.id}|Open request {req.id} in the console>"
    assert link in body["text"]
    assert body["text"].startswith("request.pending: rotate_api_key on svc-payments-key (dual_approval, requested by")
    section, context = body["blocks"]
    assert section["type"] == "section" and link in section["text"]["text"]
    assert context["elements"][0]["text"] == "owner: team-payments · approvers: alice, bob, erin, grace"
    # No interactive element anywhere: approving happens in the console, signed by the approver.
    nodes = [node for node in _walk(body) if isinstance(node, dict)]
    assert {n["type"] for n in nodes if "type" in n} == {"section", "context", "mrkdwn"}
    assert not any("accessory" in n or "actions" in n or "action_id" in n for n in nodes)
    assert "webhook-signature" not in got.headers


def test_free_text_cannot_plant_a_link_or_mention() -> None:
    # An executor's failure detail (free text) reaches the summary of request.failed; ids are
    # restricted by the proposal schema, but the escaping must not depend on that.
    hostile = "execution failed: <!channel> <https://evil.example/approve|Approve here> & more"
    message = Message(id="msg_1_x", event="request.failed", at=T0, request_id="req-1", tier="dual_approval",
                      summary=hostile, url="https://hitlgate.example.com/ui/requests/req-1",
                      teams=("team-<!here>",), approvers=(Recipient("<@U123>"),))
    text = json.dumps(payload(message))
    assert "<!channel>" not in text and "<https://evil.example" not in text and "<!here>" not in text
    assert "<@U123>" not in text
    assert "&lt;!channel&gt; &lt;https://evil.example/approve|Approve here&gt; &amp; more" in text
    # Every link is the console's (once in the text, once in the blocks).
    assert re.findall(r"<(https?://[^|>]*)", text) == ["https://hitlgate.example.com/ui/requests/req-1"] * 2


def test_a_failed_delivery_never_records_the_secret_url_path(
    make_engine: EngineFactory, closed_port: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Slack incoming-webhook URL's path is the credential; the outbox, the log and doctor show errors.
    secret_url = closed_port.replace("/hook", "/services/T0SECRET/B0SECRET/xoxSECRETtoken?x=SECRETq")
    monkeypatch.setenv("HITLGATE_TEST_SLACK_URL", secret_url)
    engine = make_engine(config={"notifications": _slack({"url_env": "HITLGATE_TEST_SLACK_URL"})})
    engine.propose(proposal())
    report = dispatch(engine, clock.now)
    assert report.retrying == 1
    [row] = outbox.list_rows(engine.store)
    assert "ConnectionRefusedError" in row.last_error and "127.0.0.1" in row.last_error
    assert "SECRET" not in row.last_error and "SECRET" not in " ".join(report.errors)
    assert "SECRET" not in str(outbox.attempts_of(engine.store, row.id))


@pytest.mark.parametrize(("settings", "message"), [
    ({}, r"notifications.channels\[0\].settings: give exactly one of url and url_env"),
    ({"url": "ftp://x", }, r"notifications.channels\[0\].settings.url: must be an http:// or https:// URL"),
    ({"url": "http:///services/T0/B0/X"}, r"settings.url: must be an http:// or https:// URL with a host$"),
    ({"url": "HTTPS://hooks.example/x\n"}, r"settings.url: must be an http:// or https:// URL with a host$"),
    ({"url": "https://hooks.example:99999/x"}, r"settings.url: must be an http:// or https:// URL with a valid port$"),
    ({"url": "https://x", "buttons": True}, r"notifications.channels\[0\].settings: unknown setting\(s\) buttons"),
])
def test_bad_slack_settings_name_the_field(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _slack(settings)


def test_executor_failure_text_cannot_reorder_hide_or_break_the_summary(
    make_engine: EngineFactory, receiver: Receiver, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The failure detail is whatever the target's API answered: a right-to-left override makes
    # "exe.txt" read as "txt.exe", zero-width characters hide words, U+2028 breaks the line.
    monkeypatch.setenv("HITLGATE_TEST_SLACK_URL", receiver.url)
    settings = NotificationSettings.from_dict(
        {"channels": [{"name": "chat", "type": "slack", "settings": {"url_env": "HITLGATE_TEST_SLACK_URL"}}],
         "routes": [{"channels": ["chat"], "events": ["request.failed"]}]},
        public_url="https://hitlgate.example.com")
    engine = make_engine(config={"notifications": settings})
    doc = proposal("suspend_service_account", "svc-ci-runner")
    _, token = granted_warrant(engine, doc, ("carol",))
    hostile = "denied by \u202etxt.exe\u202c ok\u200b\u2028<!channel>\u0085done"
    with pytest.raises(ValueError, match="denied by"), engine.guard().authorize(token, doc["action"]):
        raise ValueError(hostile)
    assert dispatch(engine, clock.now).delivered == 1
    [got] = receiver.received
    text = got.json()["text"]
    assert "execution failed: ValueError: denied by  txt.exe  ok  &lt;!channel&gt; done" in text, text
    assert not re.search("[\u200b-\u200f\u2028-\u202e\u0085]", got.body.decode("unicode_escape"))

"""The ``slack`` channel: a Slack incoming-webhook message with a summary and a link to the console.

There is deliberately no Approve button. A chat client cannot prove who
clicked (no passkey, no user verification, no device trust), and a button
would approve something other than the exact bytes an approver should see:
Teleport removed its Slack approve buttons for that reason. The message
links to ``{server.public_url}/ui/requests/{id}``, where the approver sees
the canonical action and signs it with their own passkey or key.

Text the agent wrote (action target, requester) reaches the message, so
Slack's control characters ``& < >`` are escaped: an agent must not be able
to plant a link (``<https://evil|Approve here>``) or a mention
(``<!channel>``) in a notification.

Settings: ``url`` or ``url_env`` (the incoming-webhook URL is itself a
secret: prefer ``url_env``), ``timeout_seconds`` (default 5).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from hitlgate.engine.notify.plugins import (
    Message,
    NotifierPlugin,
    require_known,
    secret_from_env,
    setting_env,
    setting_number,
)
from hitlgate.engine.notify.webhook import DEFAULT_TIMEOUT_SECONDS, http_url, post_json
from hitlgate.errors import ConfigError


def escape(text: str) -> str:
    """Escape Slack's mrkdwn control characters (its documented rule: ``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(message: Message) -> dict[str, Any]:
    """The incoming-webhook JSON: ``text`` (the fallback and notification line) and blocks, no buttons."""
    summary = escape(message.summary)
    link = f"<{message.url}|Open request {escape(message.request_id or '')} in the console>"
    who = []
    if message.teams:
        who.append("owner: " + ", ".join(escape(t) for t in message.teams))
    if message.approvers:
        who.append("approvers: " + ", ".join(escape(a.name) for a in message.approvers))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(message.event)}* {summary}\n{link}"}},
    ]
    if who:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(who)}]})
    return {"text": f"{escape(message.event)}: {summary} {link}", "blocks": blocks}


class SlackNotifier(NotifierPlugin):
    """Slack incoming-webhook delivery."""

    type: ClassVar[str] = "slack"
    _KNOWN: ClassVar[set[str]] = {"url", "url_env", "timeout_seconds"}

    def __init__(self, name: str, *, url: str | None, url_env: str | None, timeout: float, where: str) -> None:
        super().__init__(name)
        self._url = url
        self.url_env = url_env
        self.timeout = timeout
        self.where = where

    def __repr__(self) -> str:
        return f"SlackNotifier({self.name!r})"

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, Any], *, where: str, public_url: str) -> SlackNotifier:
        """Check ``url`` or ``url_env`` (exactly one) and ``timeout_seconds``."""
        require_known(settings, cls._KNOWN, where)
        if ("url" in settings) == ("url_env" in settings):
            raise ConfigError(f"{where}: give exactly one of url and url_env (the incoming-webhook URL)")
        url = http_url(settings, "url", where) if "url" in settings else None
        return cls(name, url=url, url_env=setting_env(settings, "url_env", where, required=False),
                   timeout=setting_number(settings, "timeout_seconds", where, default=DEFAULT_TIMEOUT_SECONDS,
                                          low=0.1, high=60),
                   where=where)

    def deliver(self, message: Message) -> None:
        """POST the payload; raise unless Slack answers 2xx."""
        url = self._url
        if url is None:
            url = secret_from_env(str(self.url_env), f"{self.where}.url_env")
        post_json(url, json.dumps(payload(message)).encode("utf-8"), {}, self.timeout)

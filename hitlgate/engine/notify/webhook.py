"""The ``webhook`` channel: a JSON POST signed per the Standard Webhooks specification.

Every delivery carries, in this order of checks a receiver makes:

1. ``webhook-id``: the message id, the same on every retry, so a receiver
   that got an earlier attempt drops the repeat;
2. ``webhook-timestamp``: the time of this attempt (seconds since the epoch,
   the sender's wall clock), which a receiver refuses outside its tolerance
   (five minutes in the ``standardwebhooks`` library), so a captured request
   cannot be replayed later;
3. ``webhook-signature``: ``v1,`` + base64 HMAC-SHA256 over
   ``id.timestamp.body`` with the shared secret, made by the
   ``standardwebhooks`` library itself (never a hand-rolled HMAC).

The secret is read from the environment variable ``settings.secret_env``
(``whsec_`` + base64, as the library's tooling prints it), at delivery
time; it is never logged, stored or echoed. Redirects are not followed
(a receiver that moved must be reconfigured, not followed blindly), and
the timeouts are short, so a slow receiver costs a dispatcher seconds,
never an approval anything. Any status but 2xx raises.

Settings: ``url`` (http or https), ``secret_env``, ``timeout_seconds``
(default 5).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from standardwebhooks import Webhook

from hitlgate.engine.notify.plugins import (
    DeliveryError,
    Message,
    NotifierPlugin,
    one_line,
    require_known,
    secret_from_env,
    setting_number,
    setting_str,
)
from hitlgate.errors import ConfigError

DEFAULT_TIMEOUT_SECONDS = 5.0


def http_url(settings: Mapping[str, Any], key: str, where: str) -> str:
    """An http(s) URL setting."""
    url = setting_str(settings, key, where)
    assert url is not None  # noqa: S101 - required=True never returns None.
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"{where}.{key}: must be an http:// or https:// URL")
    return url


def post_json(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> None:
    """POST ``body``; :class:`DeliveryError` unless the receiver answers 2xx. The URL is never in the message.

    A Slack or webhook URL may itself be the secret (Slack's is), so errors
    name the host only.
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2] or "?"
    try:
        response = requests.post(url, data=body, headers={"Content-Type": "application/json", **headers},
                                 timeout=(timeout, timeout), allow_redirects=False)
    except requests.RequestException as exc:
        # requests names the URL's path in its messages ("Max retries exceeded with url: /services/T0/B0/XYZ"),
        # and a Slack URL's path is its secret: every spelling of it goes.
        text = str(exc).replace(url, host)
        for part in (parts.path + ("?" + parts.query if parts.query else ""), parts.path, parts.query):
            if part and part != "/":
                text = text.replace(part, "/…")
        raise DeliveryError(f"{host}: {type(exc).__name__}: {one_line(text, 300)}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"{host} answered HTTP {response.status_code}: {one_line(response.text, 200)}")


class WebhookNotifier(NotifierPlugin):
    """Standard Webhooks delivery to one URL."""

    type: ClassVar[str] = "webhook"
    _KNOWN: ClassVar[set[str]] = {"url", "secret_env", "timeout_seconds"}

    def __init__(self, name: str, *, url: str, secret_env: str, timeout: float, where: str) -> None:
        super().__init__(name)
        self.url = url
        self.secret_env = secret_env
        self.timeout = timeout
        self.where = where

    def __repr__(self) -> str:
        # The URL may carry a token in its path; the secret is never held here.
        return f"WebhookNotifier({self.name!r})"

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, Any], *, where: str,
                      public_url: str) -> WebhookNotifier:
        """Check ``url``, ``secret_env`` and ``timeout_seconds``."""
        require_known(settings, cls._KNOWN, where)
        secret_env = setting_str(settings, "secret_env", where)
        assert secret_env is not None  # noqa: S101 - required=True never returns None.
        return cls(name, url=http_url(settings, "url", where), secret_env=secret_env,
                   timeout=setting_number(settings, "timeout_seconds", where, default=DEFAULT_TIMEOUT_SECONDS,
                                          low=0.1, high=60),
                   where=where)

    def deliver(self, message: Message) -> None:
        """Sign and POST the message's JSON body; raise unless the receiver answers 2xx."""
        secret = secret_from_env(self.secret_env, f"{self.where}.secret_env")
        try:
            signer = Webhook(secret)
        except Exception:  # noqa: BLE001 - the library's message could quote the secret: say only what to fix.
            raise ConfigError(f"{self.where}.secret_env: {self.secret_env} does not hold a Standard Webhooks secret "
                              "(whsec_ followed by base64)", code="secret_invalid") from None
        body = json.dumps(message.body(), sort_keys=True, separators=(",", ":"))
        # The attempt's own wall-clock time, not the event's: the receiver
        # holds it against its clock to refuse replays.
        sent = datetime.now(UTC)
        headers = {
            "webhook-id": message.id,
            "webhook-timestamp": str(int(sent.timestamp())),
            "webhook-signature": signer.sign(message.id, sent, body),
        }
        post_json(self.url, body.encode("utf-8"), headers, self.timeout)

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
(a receiver that moved must be reconfigured, not followed blindly). Any
status but 2xx raises.

A receiver is not trusted to be quick or small (:func:`post_json`): one
attempt ends after ``timeout_seconds`` in all, however the receiver
spends them (a connection it never answers, a status line dripped one
byte at a time, an endless body), and at most :data:`MAX_RESPONSE_BYTES`
of its answer are read. So a hostile or broken receiver costs a
dispatcher seconds and kilobytes, never an approval anything. Environment
proxy settings are not used: the receiver is reached directly.

Settings: ``url`` (http or https), ``secret_env``, ``ca_file`` (a PEM file of
the CA certificates to trust for an https receiver instead of the system's,
e.g. a private CA), ``timeout_seconds``
(default 5: the longest one attempt may take, connecting included).
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from standardwebhooks import Webhook

from hitlgate.engine.notify.plugins import (
    DeliveryError,
    Message,
    NotifierPlugin,
    hard_deadline,
    one_line,
    require_known,
    secret_from_env,
    setting_env,
    setting_number,
    setting_str,
)
from hitlgate.errors import ConfigError

DEFAULT_TIMEOUT_SECONDS = 5.0


def http_url(settings: Mapping[str, Any], key: str, where: str) -> str:
    """An http(s) URL setting."""
    url = setting_str(settings, key, where)
    assert url is not None  # noqa: S101 - required=True never returns None.
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number from 0 to 65535.
    except ValueError:
        raise ConfigError(f"{where}.{key}: must be an http:// or https:// URL with a valid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or url != one_line(url):
        raise ConfigError(f"{where}.{key}: must be an http:// or https:// URL with a host")
    return url


#: The most of a receiver's answer ever read: its body is only quoted (cut short) in an error.
MAX_RESPONSE_BYTES = 64 * 1024


def _redact(text: str, url: str, host: str) -> str:
    """``text`` without the URL, its path or its query: a Slack URL's path is its secret."""
    parts = urlsplit(url)
    text = text.replace(url, host)
    for part in (parts.path + ("?" + parts.query if parts.query else ""), parts.path, parts.query):
        if part and part != "/":
            text = text.replace(part, "/…")
    return text


def post_json(url: str, body: bytes, headers: Mapping[str, str], timeout: float, *,
              ca_file: str | None = None) -> None:
    """POST ``body``; :class:`DeliveryError` unless the receiver answers 2xx within ``timeout`` seconds in all.

    The deadline covers the whole attempt: a watchdog shuts the socket down
    when it passes, so a receiver that drips its answer a byte at a time
    cannot stretch an attempt (a per-read timeout alone never fires on it).
    Only a non-2xx answer's first :data:`MAX_RESPONSE_BYTES` are read, to
    quote in the error. A Slack or webhook URL may itself be the secret
    (Slack's is), so errors name the host only and never repeat the URL's
    path, even when the receiver's answer quotes it.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DeliveryError("the channel's URL is not a valid http:// or https:// URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        # Never echoed: it may be a secret read from the environment (Slack's url_env).
        raise DeliveryError("the channel's URL is not an http:// or https:// URL") from None
    host = parts.netloc.rpartition("@")[2]
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    auth: dict[str, str] = {}
    if parts.username is not None:
        # A receiver behind basic authentication (https://user:password@host/...), never named in an error.
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    conn: http.client.HTTPConnection
    if scheme == "https":
        # Certificates and host names are verified, against ``ca_file`` or else the system's trust store.
        conn = http.client.HTTPSConnection(parts.hostname, port, timeout=timeout,
                                           context=ssl.create_default_context(cafile=ca_file))
    else:
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    try:
        with hard_deadline(lambda: conn.sock, timeout) as expired:
            try:
                conn.connect()
                if expired.is_set():
                    raise TimeoutError("deadline passed while connecting")
                conn.request("POST", path, body=body,
                             headers={"Content-Type": "application/json", **auth, **headers})
                response = conn.getresponse()
                status = response.status
                answer = b"" if 200 <= status < 300 else response.read(MAX_RESPONSE_BYTES)
            except Exception as exc:  # noqa: BLE001 - every failure of the exchange is a failed attempt.
                if expired.is_set():
                    raise DeliveryError(f"{host}: Timeout: no complete answer within {timeout:g} s") from None
                text = _redact(str(exc), url, host)
                raise DeliveryError(f"{host}: {type(exc).__name__}: {one_line(text, 300)}") from None
    finally:
        conn.close()
    if not 200 <= status < 300:
        text = _redact(answer.decode("utf-8", "replace"), url, host)
        raise DeliveryError(f"{host} answered HTTP {status}: {one_line(text, 200)}")


class WebhookNotifier(NotifierPlugin):
    """Standard Webhooks delivery to one URL."""

    type: ClassVar[str] = "webhook"
    _KNOWN: ClassVar[set[str]] = {"url", "secret_env", "ca_file", "timeout_seconds"}

    def __init__(self, name: str, *, url: str, secret_env: str, timeout: float, where: str,
                 ca_file: str | None = None) -> None:
        super().__init__(name)
        self.url = url
        self.secret_env = secret_env
        self.timeout = timeout
        self.ca_file = ca_file
        self.where = where

    def __repr__(self) -> str:
        # The URL may carry a token in its path; the secret is never held here.
        return f"WebhookNotifier({self.name!r})"

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, Any], *, where: str,
                      public_url: str) -> WebhookNotifier:
        """Check ``url``, ``secret_env``, ``ca_file`` and ``timeout_seconds``."""
        require_known(settings, cls._KNOWN, where)
        secret_env = setting_env(settings, "secret_env", where)
        assert secret_env is not None  # noqa: S101 - required=True never returns None.
        ca_file = setting_str(settings, "ca_file", where, required=False)
        if ca_file is not None and not Path(ca_file).is_file():
            raise ConfigError(f"{where}.ca_file: no such file: {one_line(ca_file, 200)}")
        return cls(name, url=http_url(settings, "url", where), secret_env=secret_env,
                   timeout=setting_number(settings, "timeout_seconds", where, default=DEFAULT_TIMEOUT_SECONDS,
                                          low=0.1, high=60),
                   where=where, ca_file=ca_file)

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
        post_json(self.url, body.encode("utf-8"), headers, self.timeout, ca_file=self.ca_file)

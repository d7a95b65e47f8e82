"""The notifier plugin interface, the message every channel receives, and plugin loading.

A channel type is a plugin: a class registered under the entry point group
``hitlgate.notifiers`` (the built-ins ``webhook``, ``slack`` and ``email`` in
hitlgate's own ``pyproject.toml``). The class is built once per configured
channel with :meth:`NotifierPlugin.from_settings`, which checks the
channel's ``settings`` and raises :class:`~hitlgate.errors.ConfigError`
naming the field; :meth:`Notifier.deliver` sends one message and raises
(any exception) when the receiver did not take it, and the dispatcher then
retries with backoff. A plugin never decides *whether* to send: routing and
retries are the dispatcher's.
"""

from __future__ import annotations

import functools
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from hitlgate.engine._time import format_time, parse_time
from hitlgate.errors import ConfigError, HitlgateError

#: The entry point group channel types are registered under.
ENTRY_POINT_GROUP = "hitlgate.notifiers"

#: The longest delivery error kept with an outbox row or a log line (characters).
MAX_ERROR_CHARS = 500

#: Control characters (C0, DEL, C1), Unicode line and paragraph separators, and the invisible format
#: characters that reorder or hide text (bidi overrides and isolates, zero-width ones, the BOM): free
#: text such as an executor's failure detail must read in a notification exactly as it is.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


class DeliveryError(HitlgateError):
    """A receiver did not accept a notification (HTTP status, refused connection, SMTP error)."""

    code = "delivery_failed"


def one_line(text: str, limit: int = 300) -> str:
    """``text`` without control or invisible format characters (no line breaks to inject headers with, no
    right-to-left override to disguise a name), cut to ``limit``."""
    flat = _CONTROL.sub(" ", text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@contextmanager
def hard_deadline(current_socket: Callable[[], socket.socket | None], seconds: float) -> Iterator[threading.Event]:
    """Shut down the socket ``current_socket()`` returns once ``seconds`` have passed; yield the "expired" flag.

    Socket timeouts bound each read, not an exchange: a peer that sends one
    byte just inside every timeout keeps a connection open for ever. When
    the deadline passes, a timer thread shuts the socket down (which wakes a
    read blocked on it) and sets the flag, so the caller reports a timeout.
    A deadline that passes before there is a socket only sets the flag: the
    caller checks it once connected.
    """
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        sock = current_socket()
        if sock is not None:
            try:
                # The plain socket's shutdown, also for a TLS socket: it must interrupt, not negotiate.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()


@dataclass(frozen=True)
class Recipient:
    """An approver a notification addresses: their name and, when the inventory has it, their email."""

    name: str
    email: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "email": self.email}


@dataclass(frozen=True)
class Message:
    """One notification: an event about one request, for its owner team and eligible approvers.

    ``id`` is stable across retries and channels (a receiver deduplicates on
    it: Standard Webhooks' ``webhook-id``). ``data`` is the JSON body's
    ``data``; ``summary`` one line for people; ``url`` the console page.
    """

    id: str
    event: str
    at: datetime
    request_id: str | None
    tier: str
    summary: str
    url: str
    data: Mapping[str, Any] = field(default_factory=dict)
    teams: tuple[str, ...] = ()
    approvers: tuple[Recipient, ...] = ()

    @property
    def emails(self) -> tuple[str, ...]:
        """The addressed approvers' email addresses (those the inventory has)."""
        return tuple(a.email for a in self.approvers if a.email)

    def body(self) -> dict[str, Any]:
        """The JSON document a webhook receives (Standard Webhooks' ``type``/``timestamp``/``data`` shape)."""
        return {
            "type": self.event,
            "timestamp": format_time(self.at),
            "data": {
                **self.data,
                "request_id": self.request_id,
                "tier": self.tier,
                "summary": self.summary,
                "url": self.url,
                "recipients": {"teams": list(self.teams), "approvers": [a.to_dict() for a in self.approvers]},
            },
        }

    def to_json(self) -> str:
        """The message as stored in the outbox."""
        return json.dumps({
            "id": self.id, "event": self.event, "at": format_time(self.at), "request_id": self.request_id,
            "tier": self.tier, "summary": self.summary, "url": self.url, "data": dict(self.data),
            "teams": list(self.teams), "approvers": [a.to_dict() for a in self.approvers],
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Message:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        return cls(
            id=d["id"], event=d["event"], at=parse_time(d["at"]), request_id=d["request_id"], tier=d["tier"],
            summary=d["summary"], url=d["url"], data=d["data"], teams=tuple(d["teams"]),
            approvers=tuple(Recipient(a["name"], a.get("email")) for a in d["approvers"]),
        )


@runtime_checkable
class Notifier(Protocol):
    """A configured channel: ``deliver`` sends one message or raises."""

    name: str

    def deliver(self, message: Message) -> None:
        """Send ``message``; raise (any exception) when the receiver did not take it."""


class NotifierPlugin:
    """Base of the built-in channel types; a plugin may subclass it or just match :class:`Notifier`.

    The entry point names a class (or any callable) with ``from_settings``.
    """

    #: The channel type it implements (the entry point's name).
    type: ClassVar[str] = ""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, Any], *, where: str, public_url: str) -> Notifier:
        """Build the channel ``name`` from its ``settings``; :class:`ConfigError` naming ``where.FIELD`` if bad."""
        raise NotImplementedError

    def deliver(self, message: Message) -> None:
        """Send ``message``; raise when the receiver did not take it."""
        raise NotImplementedError


#: The built-in channel types, as pyproject.toml registers them. Found here too, so a checkout whose
#: installed metadata predates a built-in (an old editable install) still has it, and so a third-party
#: plugin registered under a built-in's name cannot silently replace it.
BUILTINS = {
    "webhook": "hitlgate.engine.notify.webhook:WebhookNotifier",
    "slack": "hitlgate.engine.notify.slack:SlackNotifier",
    "email": "hitlgate.engine.notify.smtp:EmailNotifier",
}


@functools.lru_cache(maxsize=1)
def _registered() -> dict[str, Any]:
    # Imported here: scanning installed distributions costs start-up time only where plugins are used.
    from importlib.metadata import EntryPoint, entry_points

    found: dict[str, Any] = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    found.update({name: EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in BUILTINS.items()})
    return found


def plugin_types() -> tuple[str, ...]:
    """The channel types installed (entry point names), sorted."""
    return tuple(sorted(_registered()))


def load_plugin(kind: str, *, where: str) -> Any:
    """The plugin class registered for channel type ``kind``; :class:`ConfigError` naming ``where`` if none."""
    ep = _registered().get(kind)
    if ep is None:
        known = ", ".join(plugin_types()) or "none installed"
        raise ConfigError(f"{where}: unknown channel type {one_line(kind, 60)!r} (installed: {known}; plugins "
                          f"register under the entry point group {ENTRY_POINT_GROUP})")
    try:
        plugin = ep.load()
    except Exception as exc:  # noqa: BLE001 - a broken third-party plugin is a configuration problem here.
        raise ConfigError(f"{where}: the plugin for channel type {kind!r} ({ep.value}) does not load: {exc}") from exc
    if not callable(getattr(plugin, "from_settings", None)):
        raise ConfigError(f"{where}: the plugin for channel type {kind!r} ({ep.value}) has no from_settings()")
    return plugin


# -- small checks the built-in plugins share ----------------------------------


def setting_str(settings: Mapping[str, Any], key: str, where: str, *, required: bool = True,
                default: str | None = None) -> str | None:
    """A string setting; :class:`ConfigError` naming ``where.key`` when missing or not a non-empty string."""
    if key not in settings:
        if required:
            raise ConfigError(f"{where}.{key}: required")
        return default
    value = settings[key]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}: must be a non-empty string")
    return value


_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


def setting_env(settings: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    """The name of the environment variable that holds a secret (``secret_env``, ``url_env``, ``password_env``).

    Upper-case letters, digits and ``_`` only. The check refuses the usual
    mistake of pasting the secret itself where its variable's name goes
    (``whsec_...``, a Slack URL, a password), and the message never repeats
    the value: a name that passed would be echoed in every later error
    ("the environment variable ... is not set"), into logs and ``doctor``.
    """
    if key not in settings:
        if required:
            raise ConfigError(f"{where}.{key}: required (the name of the environment variable holding the secret)")
        return None
    value = settings[key]
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise ConfigError(f"{where}.{key}: must be the NAME of an environment variable (upper-case letters, digits "
                          "and _, e.g. HITLGATE_WEBHOOK_SECRET), not the secret itself; the value is not repeated here")
    return value


def setting_number(settings: Mapping[str, Any], key: str, where: str, *, default: float, low: float,
                   high: float) -> float:
    """A number setting between ``low`` and ``high``."""
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{where}.{key}: must be a number from {low:g} to {high:g}")
    return float(value)


def require_known(settings: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """Refuse settings this channel type does not know (a typo must not silently do nothing)."""
    unknown = sorted(str(k) for k in settings if k not in allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(one_line(k, 40) for k in unknown)}; "
                          f"known: {', '.join(sorted(allowed))}")


def secret_from_env(env_name: str, where: str) -> str:
    """The secret held in environment variable ``env_name``; never logged or echoed.

    Read when a delivery is made, not when the configuration loads: commands
    that never notify must not need the secret.
    """
    import os

    value = os.environ.get(env_name, "")
    if not value:
        raise ConfigError(f"{where}: the environment variable {env_name} is not set (it holds the channel's secret)",
                          code="secret_missing")
    return value

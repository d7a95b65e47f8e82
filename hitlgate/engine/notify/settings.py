"""``notifications:`` in ``hitlgate.yaml``: channels, routes and delivery settings, checked strictly.

Example::

    notifications:
      channels:
        - name: soc-webhook
          type: webhook
          settings: {url: "https://soc.example.com/hooks/hitlgate", secret_env: HITLGATE_WEBHOOK_SECRET}
        - name: payments-slack
          type: slack
          settings: {url_env: HITLGATE_SLACK_URL}
      routes:
        - events: [request.pending, request.expiring, request.escalated]
          tiers: [dual_approval]
          teams: [team-payments]
          channels: [payments-slack]
        - channels: [soc-webhook]          # every event of every tier that needs approval

A route matches a notification when each of its lists that is given holds
the notification's event, its request's tier, and the owner team of its
target. ``auto_allow`` requests match only a route whose ``tiers`` names
``auto_allow``: nothing is sent for them unless asked. Every error names
the field (``notifications.routes[1].channels[0]: no channel named ...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hitlgate.engine.notify.plugins import Notifier, load_plugin, one_line
from hitlgate.errors import ConfigError

#: The notification events (Contract A of issue 12), and the audit kinds they come from.
EVENTS = (
    "request.pending",
    "request.vote",
    "request.granted",
    "request.rejected",
    "request.revoked",
    "request.expiring",
    "request.expired",
    "request.executed",
    "request.failed",
    "request.reminder",
    "request.escalated",
)

TIERS = ("auto_allow", "single_approval", "dual_approval", "deny")

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BACKOFF_SECONDS = 30.0
DEFAULT_MAX_BACKOFF_SECONDS = 3600.0
#: An event older than this when the dispatcher first sees it is not sent: a
#: notification about something long over would only mislead.
DEFAULT_MAX_EVENT_AGE_SECONDS = 3600.0

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_TOP_KEYS = {"channels", "routes", "max_attempts", "backoff_seconds", "max_backoff_seconds", "max_event_age_seconds"}


@dataclass(frozen=True)
class ChannelSpec:
    """One configured channel: its name, type (a plugin) and the plugin's settings."""

    name: str
    type: str
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """Which notifications go to which channels; an empty filter matches everything."""

    channels: tuple[str, ...]
    events: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()

    def matches(self, event: str, tier: str, teams: tuple[str, ...]) -> bool:
        """Whether a notification of ``event`` on a ``tier`` request owned by ``teams`` takes this route.

        ``auto_allow`` matches only a route that names it: an auto-allowed
        action is routine and must not page anyone unless someone asked.
        """
        if self.events and event not in self.events:
            return False
        if tier == "auto_allow" and "auto_allow" not in self.tiers:
            return False
        if self.tiers and tier not in self.tiers:
            return False
        return not self.teams or bool(set(self.teams).intersection(teams))


@dataclass(frozen=True)
class NotificationSettings:
    """The validated ``notifications:`` section."""

    channels: tuple[ChannelSpec, ...] = ()
    routes: tuple[Route, ...] = ()
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    max_backoff_seconds: float = DEFAULT_MAX_BACKOFF_SECONDS
    max_event_age_seconds: float = DEFAULT_MAX_EVENT_AGE_SECONDS
    #: The console's origin the messages link to (``server.public_url``); empty: the server's own address.
    public_url: str = ""

    def channels_for(self, event: str, tier: str, teams: tuple[str, ...]) -> tuple[str, ...]:
        """The channels a notification goes to (each once, in configuration order)."""
        wanted = {c for r in self.routes if r.matches(event, tier, teams) for c in r.channels}
        return tuple(c.name for c in self.channels if c.name in wanted)

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones: doubling, capped."""
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** max(0, attempts - 1)))

    def notifiers(self, public_url: str) -> dict[str, Notifier]:
        """Build every channel's notifier (plugins loaded by type); :class:`ConfigError` naming the field."""
        out: dict[str, Notifier] = {}
        for i, c in enumerate(self.channels):
            where = f"notifications.channels[{i}]"
            plugin = load_plugin(c.type, where=f"{where}.type")
            out[c.name] = plugin.from_settings(c.name, c.settings, where=f"{where}.settings", public_url=public_url)
        return out

    @classmethod
    def from_dict(cls, raw: Any, *, public_url: str = "") -> NotificationSettings:
        """Check and build the section; every channel's settings are checked by its plugin now."""
        where = "notifications"
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: must be a mapping with channels and routes")
        _known(raw, _TOP_KEYS, where)
        channels = tuple(_channel(c, f"{where}.channels[{i}]") for i, c in enumerate(_list(raw, "channels", where)))
        names = [c.name for c in channels]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"{where}.channels[{i}].name: {name!r} is used by an earlier channel")
        routes = tuple(_route(r, f"{where}.routes[{i}]", set(names)) for i, r in enumerate(_list(raw, "routes", where)))
        settings = cls(
            channels=channels,
            routes=routes,
            max_attempts=int(_number(raw, "max_attempts", where, DEFAULT_MAX_ATTEMPTS, 1, 100, integer=True)),
            backoff_seconds=_number(raw, "backoff_seconds", where, DEFAULT_BACKOFF_SECONDS, 0, 86400),
            max_backoff_seconds=_number(raw, "max_backoff_seconds", where, DEFAULT_MAX_BACKOFF_SECONDS, 0, 7 * 86400),
            max_event_age_seconds=_number(raw, "max_event_age_seconds", where, DEFAULT_MAX_EVENT_AGE_SECONDS, 1,
                                          30 * 86400),
            public_url=public_url.rstrip("/"),
        )
        # Each plugin checks its own settings now, so a typo fails at start-up, not at the first page.
        settings.notifiers(settings.public_url or "http://127.0.0.1:8080")
        return settings


def _known(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(one_line(k, 40) for k in unknown)}; "
                          f"known: {', '.join(sorted(allowed))}")


def _list(raw: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{where}.{key}: must be a list")
    if len(value) > 200:
        raise ConfigError(f"{where}.{key}: at most 200 entries")
    return value


def _number(raw: Mapping[str, Any], key: str, where: str, default: float, low: float, high: float,
            *, integer: bool = False) -> float:
    value = raw.get(key, default)
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where}.{key}: must be {kind} from {low:g} to {high:g}")
    return float(value)


def _names(raw: Mapping[str, Any], key: str, where: str, choices: tuple[str, ...] | set[str] | None) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key}: must be a list of strings")
    for i, v in enumerate(value):
        if choices is not None and v not in choices:
            raise ConfigError(f"{where}.{key}[{i}]: {one_line(v, 60)!r} is not one of {', '.join(sorted(choices))}")
    return tuple(dict.fromkeys(value))


def _channel(raw: Any, where: str) -> ChannelSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a mapping with name, type and settings")
    _known(raw, {"name", "type", "settings"}, where)
    name, kind = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{where}.name: required, lower-case letters, digits, '.', '_' or '-' (at most 63)")
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"{where}.type: required (a channel type such as webhook, slack or email)")
    settings = raw.get("settings", {})
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{where}.settings: must be a mapping")
    return ChannelSpec(name=name, type=kind, settings=dict(settings))


def _route(raw: Any, where: str, channel_names: set[str]) -> Route:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a mapping with channels (and optional events, tiers, teams)")
    _known(raw, {"channels", "events", "tiers", "teams"}, where)
    if "channels" not in raw:
        raise ConfigError(f"{where}.channels: required (the channel names this route sends to)")
    channels = _names(raw, "channels", where, None)
    if not channels:
        raise ConfigError(f"{where}.channels: name at least one channel")
    for i, c in enumerate(channels):
        if c not in channel_names:
            raise ConfigError(f"{where}.channels[{i}]: no channel named {one_line(c, 60)!r} "
                              f"(configured: {', '.join(sorted(channel_names)) or 'none'})")
    return Route(
        channels=channels,
        events=_names(raw, "events", where, EVENTS),
        tiers=_names(raw, "tiers", where, TIERS),
        teams=_names(raw, "teams", where, None),
    )

"""Configuration: ``hitlgate.yaml``.

Found via ``--config``, else ``$HITLGATE_CONFIG``, else ``./hitlgate.yaml``
if present; with none, the bundled example pack is used. Relative paths in
the file are relative to the file's directory. State and engine keys
default to :func:`default_home`: ``$HITLGATE_HOME``, else
``$XDG_STATE_HOME/hitlgate``, else ``~/.local/state/hitlgate``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitlgate.engine._resources import bundled_data_dir, bundled_policy_dir, bundled_scenario_dir
from hitlgate.engine._safeparse import load_yaml, read_limited
from hitlgate.engine.decide import schemas
from hitlgate.engine.decide._decision_cache import DEFAULT_SIZE as DEFAULT_DECISION_CACHE
from hitlgate.engine.limits import CONFIG_MAX_BYTES, DEFAULT_LIMITS, Limits
from hitlgate.engine.notify.settings import NotificationSettings
from hitlgate.errors import ConfigError, ValidationError

CONFIG_ENV = "HITLGATE_CONFIG"
HOME_ENV = "HITLGATE_HOME"
DEFAULT_CONFIG_NAME = "hitlgate.yaml"

#: Warrants live minutes, not hours: a stolen warrant is useless soon.
DEFAULT_WARRANT_TTL = 300
DEFAULT_OPA_TIMEOUT_MS = 500
#: ``hitlgate policy check``'s default coverage threshold (percent) for ``opa test --coverage``.
DEFAULT_COVERAGE_THRESHOLD = 80.0
#: The audit anchor's file name in the key directory (see :mod:`hitlgate.engine.ledger.anchor`).
ANCHOR_FILE = "audit-anchor.jsonl"


@dataclass(frozen=True)
class BackendConfig:
    """Which Rego engine evaluates the policy."""

    kind: str = "embedded"
    url: str | None = None
    timeout_ms: int = DEFAULT_OPA_TIMEOUT_MS
    #: Outputs the embedded backend keeps for repeated inputs (exact; 0 turns the cache off).
    decision_cache: int = DEFAULT_DECISION_CACHE


def sqlite_url(path: Path | str) -> str:
    """The ``sqlite:///`` URL of the state file at ``path``: SQLAlchemy reads ``path`` back from it exactly.

    ``f"sqlite:///{path}"`` is that URL unless the path holds a ``%``
    (SQLAlchemy decodes percent-escapes in the database part, so a
    directory ``a%2Db`` would name ``a-b``) or a ``?`` (it would start the
    query); those are escaped by SQLAlchemy itself, imported only then.
    """
    text = str(path)
    if "%" not in text and "?" not in text:
        return f"sqlite:///{text}"
    from sqlalchemy.engine import URL

    return URL.create("sqlite", database=text).render_as_string(hide_password=False)


#: A SQLite URL whose database is in memory (no path, or ``:memory:``) keeps nothing past the command.
_IN_MEMORY = "state: an empty or in-memory SQLite database keeps no request past the command that made it; give " \
             "the state file's path, e.g. sqlite:///state/hitlgate.db"


def _config_state_url(url: str, base: Path, source: Path | None) -> str:
    """The ``state:`` URL of a config file: a relative SQLite path is under ``base``; in memory is refused."""
    head, sep, rest = url.partition("://")
    if head not in ("sqlite", "sqlite+pysqlite") or not sep:
        return url
    if rest == "" or rest.startswith("?"):
        raise ConfigError(f"config {source}: {_IN_MEMORY}", code="invalid_state_url")
    if not rest.startswith("/") or rest.startswith("//"):
        return url  # A host (refused by the store) or an absolute path, resolved by no one but the OS.
    text, query_sep, query = rest[1:].partition("?")
    if "%" in text:
        # Escapes the user wrote: read the path as SQLAlchemy will.
        from sqlalchemy.engine import make_url

        try:
            database = make_url(url).database or ""
        except ValueError:
            return url  # The store refuses it, without echoing it (it may hold a password).
    else:
        database = text
    if database in ("", ":memory:"):
        raise ConfigError(f"config {source}: {_IN_MEMORY}", code="invalid_state_url")
    built = sqlite_url(_under(base, database))
    return head + built[len("sqlite"):] + query_sep + query


def _under(base: Path, p: str) -> Path:
    """A path from a config file: ``~`` expanded, and a relative one under ``base`` (the file's directory)."""
    q = Path(os.path.expanduser(p))
    return q if q.is_absolute() else (base / q)


def default_home() -> Path:
    """Directory for state and engine keys when the config names none.

    ``$HITLGATE_HOME``, else ``$XDG_STATE_HOME/hitlgate``, else
    ``~/.local/state/hitlgate``. Deliberately not ``~/.hitlgate``, the folder
    the README suggests for approvers' private keys: the engine's signing
    keys and database must not sit next to the keys that approve.
    """
    explicit = os.environ.get(HOME_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "hitlgate"


@dataclass(frozen=True)
class ServerConfig:
    """``hitlgate serve`` settings (``server:`` in ``hitlgate.yaml``; the command's options override them)."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    #: Largest request body accepted (HTTP 413 above it), before any document's own limit.
    max_body_bytes: int = 256 * 1024
    #: Requests per second per API key (token bucket, per replica); 0 turns the limit off.
    rate_per_second: float = 50.0
    rate_burst: int = 100
    #: Longest ``GET /v1/requests/{id}?wait=`` long-poll, in seconds.
    max_wait_seconds: int = 60
    #: Failed authentications per second per client address (token bucket, per
    #: replica); an address over it gets 429 before its token is even looked up.
    auth_failures_per_second: float = 1.0
    auth_failure_burst: int = 20
    #: Concurrent ``?wait=`` long-polls per API key (the next one gets 429).
    max_waits_per_key: int = 4
    #: Threads that run engine calls (database, policy) in each worker. Each
    #: compiles its own policy interpreter once (regopy is not thread-safe).
    threads: int = 8
    #: How often (seconds) a worker looks for changed policy or inventory files
    #: (one ``stat`` per file); a change is decided on within this long. 0: before every decision.
    file_check_seconds: float = 0.5
    #: How long ``POST /v1/decisions`` may reuse a key's successful authentication in
    #: one worker (that endpoint stores and grants nothing); every other endpoint looks
    #: the key up on every call. A revoked key can still *decide* for this long. 0: never reuse.
    decide_auth_seconds: float = 1.0
    #: The console's origin as browsers see it (e.g. https://hitlgate.example.com):
    #: passkey ceremonies are bound to it, and enrolment links start with it.
    public_url: str | None = None
    #: The WebAuthn relying party id; None means the host of ``public_url``.
    rp_id: str | None = None
    #: How long a console login lasts, in minutes.
    session_minutes: int = 480


#: The tiers that wait for people, and so can be reminded, escalated and warned about.
REMINDER_TIERS = ("single_approval", "dual_approval")


@dataclass(frozen=True)
class TierReminders:
    """When to nudge about a request of one tier still waiting for its quorum (minutes; None: never)."""

    #: Remind the eligible approvers this long after the proposal.
    remind_after_minutes: int | None = None
    #: Escalate to the escalation list of the request's teams this long after the proposal.
    escalate_after_minutes: int | None = None
    #: Warn the eligible approvers this long before the approval window closes.
    warn_before_expiry_minutes: int | None = None


@dataclass(frozen=True)
class RemindersConfig:
    """``reminders:`` in ``hitlgate.yaml``: per-tier thresholds and how often ``serve`` ticks.

    ``serve`` runs :func:`hitlgate.engine.tick.run_tick` every
    ``tick_seconds`` while it holds the database lease, which it takes for
    ``lease_seconds`` and renews every tick; the lease must outlast several
    ticks, or it would lapse between them and another replica could take over
    mid-work. ``hitlgate tick`` (cron) uses the same thresholds.
    """

    tick_seconds: int = 5
    lease_seconds: int = 30
    tiers: Mapping[str, TierReminders] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.lease_seconds < 2 * self.tick_seconds:
            raise ConfigError(
                f"reminders.lease_seconds ({self.lease_seconds}) must be at least twice reminders.tick_seconds "
                f"({self.tick_seconds}), or the lease would lapse between two ticks"
            )
        for tier, t in self.tiers.items():
            if tier not in REMINDER_TIERS:
                raise ConfigError(f"reminders.{tier}: only {', '.join(REMINDER_TIERS)} wait for people")
            if (t.remind_after_minutes is not None and t.escalate_after_minutes is not None
                    and t.escalate_after_minutes <= t.remind_after_minutes):
                raise ConfigError(
                    f"reminders.{tier}.escalate_after_minutes ({t.escalate_after_minutes}) must be later than "
                    f"remind_after_minutes ({t.remind_after_minutes}): escalate only after the approvers were reminded"
                )

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RemindersConfig:
        """Build from the validated ``reminders:`` mapping."""
        tiers = {tier: TierReminders(**raw[tier]) for tier in REMINDER_TIERS if tier in raw}
        return cls(tick_seconds=raw.get("tick_seconds", 5), lease_seconds=raw.get("lease_seconds", 30), tiers=tiers)


@dataclass(frozen=True)
class Config:
    """Resolved configuration (absolute paths)."""

    policy_dir: Path = field(default_factory=bundled_policy_dir)
    data_paths: tuple[Path, ...] = field(default_factory=lambda: (bundled_data_dir(),))
    scenario_dir: Path = field(default_factory=bundled_scenario_dir)
    backend: BackendConfig = field(default_factory=BackendConfig)
    state_url: str = ""
    key_dir: Path = field(default_factory=lambda: default_home() / "keys")
    warrant_ttl_seconds: int = DEFAULT_WARRANT_TTL
    issuer: str = "hitlgate"
    audience: str = "hitlgate-executor"
    source: Path | None = None
    #: The append-only file of signed audit checkpoints kept outside the
    #: database; None means ``<key_dir>/audit-anchor.jsonl``.
    audit_anchor: Path | None = None
    #: Risk factors the project's policies add to the built-in ones; the
    #: decision contract accepts exactly the built-in and these.
    risk_factors: tuple[str, ...] = ()
    #: Byte and nesting limits on documents read from outside (``limits:``).
    limits: Limits = DEFAULT_LIMITS
    #: Where the inventory comes from (``inventory: {source: ...}``): ``files``
    #: (the ``data`` paths) or ``database`` (the tables of the state store at
    #: ``state_url``, managed with ``hitlgate inventory``; see inventory_db).
    inventory_source: str = "files"
    #: ``hitlgate serve`` settings.
    server: ServerConfig = field(default_factory=ServerConfig)
    #: ``hitlgate policy check``: the least test coverage (percent) it accepts (``policy_check:``).
    coverage_threshold: float = DEFAULT_COVERAGE_THRESHOLD
    #: ``notifications:`` (channels, routes, retries); None: nothing is sent.
    notifications: NotificationSettings | None = None
    #: ``reminders:`` (per-tier reminders, escalation, expiry warnings; the tick's interval and lease).
    reminders: RemindersConfig = field(default_factory=RemindersConfig)

    def __post_init__(self) -> None:
        if not self.state_url:
            object.__setattr__(self, "state_url", sqlite_url(default_home() / "state.db"))

    @property
    def anchor_path(self) -> Path:
        """Where the audit anchor lives: ``audit_anchor``, else ``<key_dir>/audit-anchor.jsonl``."""
        return self.audit_anchor if self.audit_anchor is not None else self.key_dir / ANCHOR_FILE

    @classmethod
    def from_file(cls, path: Path) -> Config:
        """Load and validate a ``hitlgate.yaml``."""
        path = Path(path)
        try:
            data, label = read_limited(path, max_bytes=CONFIG_MAX_BYTES, what=f"config {path}", limit_key=None)
            raw = load_yaml(data, what=f"config {path}", label=label, max_depth=DEFAULT_LIMITS.max_depth)
        except ValidationError as exc:
            if exc.code == "unreadable":
                raise ConfigError(f"cannot read config {path}: {exc.problems[0]}") from exc
            raise ConfigError(str(exc), code=None if exc.code.startswith("invalid_") else exc.code,
                              problems=exc.problems) from exc
        raw = raw or {}
        try:
            schemas.validate("config", raw, what=f"config {path}")
        except ValidationError as exc:
            # The problems stay a list under --json, one line each, as a proposal's do.
            raise ConfigError(str(exc), problems=exc.problems) from exc
        return cls.from_dict(raw, base=path.parent.resolve(), source=path.resolve())

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, base: Path, source: Path | None = None) -> Config:
        """Resolve a validated config mapping against ``base``."""

        def rel(p: str) -> Path:
            return _under(base, p)

        kwargs: dict[str, Any] = {"source": source}
        if "policy" in raw:
            kwargs["policy_dir"] = rel(raw["policy"])
        if "data" in raw:
            data = raw["data"]
            kwargs["data_paths"] = tuple(rel(d) for d in ([data] if isinstance(data, str) else data))
        elif "policy" in raw:
            kwargs["data_paths"] = (rel(raw["policy"]) / "data",)
        if "scenarios" in raw:
            kwargs["scenario_dir"] = rel(raw["scenarios"])
        elif "policy" in raw:
            kwargs["scenario_dir"] = rel(raw["policy"]) / "scenarios"
        if "backend" in raw:
            b = raw["backend"]
            if b["kind"] == "opa" and not b.get("url"):
                raise ConfigError(f"config {source}: backend.url is required when backend.kind is opa")
            kwargs["backend"] = BackendConfig(
                kind=b["kind"], url=b.get("url"), timeout_ms=b.get("timeout_ms", DEFAULT_OPA_TIMEOUT_MS),
                decision_cache=b.get("decision_cache", DEFAULT_DECISION_CACHE),
            )
        if "state" in raw:
            url = raw["state"]
            url = _config_state_url(url, base, source)
            kwargs["state_url"] = url
        if "keys" in raw:
            kwargs["key_dir"] = rel(raw["keys"])
        if "audit_anchor" in raw:
            kwargs["audit_anchor"] = rel(raw["audit_anchor"])
        if "risk_factors" in raw:
            kwargs["risk_factors"] = tuple(raw["risk_factors"])
        if "limits" in raw:
            kwargs["limits"] = Limits.from_dict(raw["limits"])
        if "inventory" in raw:
            kwargs["inventory_source"] = raw["inventory"].get("source", "files")
        if "server" in raw:
            kwargs["server"] = ServerConfig(**raw["server"])
        if "notifications" in raw:
            server = raw.get("server") or {}
            try:
                kwargs["notifications"] = NotificationSettings.from_dict(
                    raw["notifications"], public_url=str(server.get("public_url") or ""))
            except ConfigError as exc:
                raise ConfigError(f"config {source}: {exc}", code=exc.code) from exc
        if "reminders" in raw:
            try:
                kwargs["reminders"] = RemindersConfig.from_dict(raw["reminders"])
            except ConfigError as exc:
                raise ConfigError(f"config {source}: {exc}") from exc
        if "coverage_threshold" in raw.get("policy_check", {}):
            kwargs["coverage_threshold"] = float(raw["policy_check"]["coverage_threshold"])
        for key in ("warrant_ttl_seconds", "issuer", "audience"):
            if key in raw:
                kwargs[key] = raw[key]
        return cls(**kwargs)


def load_config(path: str | Path | None = None) -> Config:
    """Find and load the configuration (see module docstring)."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None and Path(DEFAULT_CONFIG_NAME).is_file():
        path = DEFAULT_CONFIG_NAME
    if path is None:
        return Config()
    return Config.from_file(Path(path))

"""``hitlgate doctor``: a non-raising health report of the configured backend.

Like python-tuf's ``VerificationResult``, this is the report a UI shows, not
a security check: deciding still goes through
:class:`~hitlgate.engine.decide.decider.Decider`, which fails closed on its own.
The report answers four questions: which backend is configured, does it
answer, which policy revision does it serve, and is that the revision of the
local pack. It also says whether the setup is fit for real decisions: the
bundled example pack, or approvers registered with demo keys (derived from a
public seed), are reported as not production-ready.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hitlgate.engine.config import Config
from hitlgate.engine.decide.policy import PolicyPack
from hitlgate.errors import HitlgateError


@dataclass
class BackendReport:
    """What ``hitlgate doctor`` found."""

    backend: str
    location: str
    local_revision: str | None = None
    served_revisions: list[str] = field(default_factory=list)
    answers: bool = False
    decision_defined: bool = False
    latency_ms: float | None = None
    problems: list[str] = field(default_factory=list)
    #: Why this setup must not make real decisions (empty when it may).
    not_production_ready: list[str] = field(default_factory=list)
    #: Things to fix that do not stop decisions (a state file others can read).
    warnings: list[str] = field(default_factory=list)
    #: With ``notifications:`` configured: ``{"dead": {"count", "latest"}}`` (the dead letters), else None.
    notifications: dict[str, Any] | None = None

    @property
    def production_ready(self) -> bool:
        """Whether the backend is healthy and nothing in the setup is a demo stand-in."""
        return self.healthy and not self.not_production_ready

    @property
    def matches(self) -> bool:
        """Whether the backend serves exactly the local pack's revision."""
        return self.local_revision is not None and self.served_revisions == [self.local_revision]

    @property
    def healthy(self) -> bool:
        """Whether decisions on this backend can come out of the policy (not fail closed)."""
        return self.answers and self.decision_defined and self.matches and not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the derived ``matches`` and ``healthy``."""
        return {
            **asdict(self),
            "matches": self.matches,
            "healthy": self.healthy,
            "production_ready": self.production_ready,
        }


def diagnose(config: Config) -> BackendReport:
    """Probe the backend ``config`` names with one decision and report; never raises."""
    from hitlgate.engine.decide._opa import PROBE_INPUT

    kind = config.backend.kind
    if kind == "opa":
        location = config.backend.url or "(no backend.url)"
    else:
        location = f"in process ({config.policy_dir})"
    report = BackendReport(backend=kind, location=location)
    try:
        pack = PolicyPack.load(config.policy_dir, config.data_paths, limits=config.limits)
        # OPA's bundle carries the modules revision; the embedded engine reports the policy revision.
        report.local_revision = pack.modules_revision if kind == "opa" else pack.revision
        if config.inventory_source == "files":
            _check_route_teams(config, pack.inventory.document, report)
    except HitlgateError as exc:
        report.problems.append(f"local policy pack does not load: {exc}")
    if kind == "opa":
        _probe_opa(config, report, PROBE_INPUT)
    elif kind == "embedded":
        _probe_embedded(config, report, PROBE_INPUT)
    else:
        report.problems.append(f"unknown backend kind {kind!r}")
    if report.answers and report.local_revision and not report.matches:
        report.problems.append(
            f"revision mismatch: backend serves {', '.join(report.served_revisions) or 'no bundle'}, "
            f"local pack is {report.local_revision}"
        )
    if report.answers and not report.decision_defined:
        report.problems.append("data.hitlgate.decision is undefined for the probe proposal")
    _check_database_inventory(config, report)
    _check_readiness(config, report)
    # Imported here: SQLAlchemy must cost nothing to commands that never open the store.
    from hitlgate.engine.ledger.store import check_state_url, state_file_exposure

    try:
        check_state_url(config.state_url)
    except HitlgateError as exc:
        # Every command that opens the store refuses it (exit 2): the setup is not healthy.
        report.problems.append(str(exc))
    report.warnings.extend(state_file_exposure(config.state_url))
    _check_notifications(config, report)
    return report


def _check_route_teams(config: Config, inventory: Mapping[str, Any], report: BackendReport) -> None:
    """Warn about a ``notifications.routes[].teams`` entry the inventory does not know: that route never matches.

    A typo there (``team-paymnets``) silently sends nothing to anyone, so it is named here.
    """
    settings = config.notifications
    if settings is None:
        return
    known = set(inventory.get("teams") or {})
    for section in ("identities", "workloads"):
        for rec in (inventory.get(section) or {}).values():
            if isinstance(rec, Mapping) and isinstance(rec.get("owner"), str):
                known.add(rec["owner"])
    for i, route in enumerate(settings.routes):
        for j, team in enumerate(route.teams):
            if team not in known:
                report.warnings.append(f"notifications.routes[{i}].teams[{j}]: no team {team!r} in the inventory "
                                       "(no target is owned by it, so this route never matches)")


def _check_notifications(config: Config, report: BackendReport) -> None:
    """With ``notifications:`` configured: count the dead letters (notifications given up) and show the latest."""
    if config.notifications is None:
        return
    from hitlgate.engine.ledger.store import Store
    from hitlgate.engine.notify.outbox import dead_letters

    try:
        store = Store.open(config.state_url)
        try:
            dead = dead_letters(store)
        finally:
            store.close()
    except HitlgateError as exc:
        report.warnings.append(f"cannot read the notification outbox: {exc}")
        return
    report.notifications = {"dead": dead.to_dict()}
    if dead.latest is not None:
        latest = dead.latest
        report.warnings.append(
            f"{dead.count} notification(s) dead (given up after every retry); latest: #{latest.id} "
            f"{latest.event} to {latest.channel} for {latest.request_id or '-'}: {latest.last_error}; "
            f"fix the channel, then `hitlgate notifications retry {latest.id}` "
            "(`hitlgate notifications list --status dead` lists them all)"
        )


def _check_database_inventory(config: Config, report: BackendReport) -> None:
    """With ``inventory: {source: database}``, every decision reads the database: an empty one fails them all.

    The probe above decides on the local files, so it cannot see this; a
    database inventory that was never imported (or cannot be read) makes
    every real decision fail closed, which is not healthy.
    """
    if config.inventory_source != "database":
        return
    from hitlgate.engine.decide.inventory_db import InventoryDB

    try:
        db = InventoryDB.open(config.state_url)
        try:
            status = db.status()
            writable = db.writable_tables()
        finally:
            db.close()
    except HitlgateError as exc:
        report.problems.append(f"cannot read the inventory from the database (inventory.source: database): {exc}")
        return
    if writable:
        # Not a problem (it decides as configured), but the trust it implies is easy to miss.
        report.warnings.append(
            "the credentials in `state` may write the inventory tables (" + ", ".join(writable) + "): whoever "
            "holds them decides every risk fact and every approver's key, so they can have an action allowed "
            "without a real approval. On PostgreSQL run the service with a role that may only SELECT these "
            "tables and `hitlgate inventory` with another (README, \"Inventory in the database\")"
        )
    if status.version == 0:
        report.problems.append(
            "the inventory in the database is empty (inventory.source: database): nothing was ever imported, "
            "so every decision fails closed; run `hitlgate inventory import FILE...` "
            "(or set inventory.source: files)"
        )


def _check_readiness(config: Config, report: BackendReport) -> None:
    """Note what makes this setup unfit for real decisions even when the backend is healthy."""
    from hitlgate.engine.decide.inventory import load_inventory
    from hitlgate.engine.keys._demokeys import demo_key_approvers, uses_example_pack

    if uses_example_pack(config.policy_dir, config.data_paths):
        report.not_production_ready.append(
            "the bundled example pack decides (no hitlgate.yaml, or one that names no policy): "
            "create a project with `hitlgate init DIR`"
        )
    try:
        approvers = load_inventory(config.data_paths).approvers
    except HitlgateError:
        return  # Already reported: the local pack does not load.
    demo = demo_key_approvers((name, a.public_key) for name, a in approvers.items())
    if demo:
        report.not_production_ready.append(
            f"approvers with demo keys (public seed; refused outside `hitlgate demo`): {', '.join(demo)}; "
            "replace each public_key with one from `hitlgate keys generate`"
        )


def _probe_opa(config: Config, report: BackendReport, probe: Any) -> None:
    from hitlgate.engine.decide._opa import OpaBackend

    if not config.backend.url:
        report.problems.append("backend.url is not set")
        return
    try:
        backend = OpaBackend(
            config.backend.url,
            expected_revision=report.local_revision or "unknown",
            timeout_ms=config.backend.timeout_ms,
        )
    except HitlgateError as exc:
        report.problems.append(str(exc))
        return
    try:
        started = time.perf_counter()
        answer = backend.query(probe)
        report.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    except HitlgateError as exc:
        report.problems.append(str(exc))
        return
    finally:
        backend.close()
    report.answers = True
    report.served_revisions = list(answer.revisions)
    report.decision_defined = answer.result is not None


def _probe_embedded(config: Config, report: BackendReport, probe: Any) -> None:
    from hitlgate.engine.decide._regopy import RegopyBackend

    backend = RegopyBackend(config.policy_dir, list(config.data_paths), watch=False)
    try:
        started = time.perf_counter()
        result, revision = backend.evaluate(probe)
        report.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    except HitlgateError as exc:
        report.problems.append(str(exc))
        return
    finally:
        backend.close()
    report.answers = True
    report.served_revisions = [revision]
    report.decision_defined = result is not None

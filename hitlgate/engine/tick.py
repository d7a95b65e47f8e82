"""The periodic work of the engine: one tick.

:func:`run_tick` does, in this order, at ``now``:

1. the expiry sweep (:meth:`Engine.expire_due`): pending requests past their
   approval window and grants past their warrant lifetime become
   ``expired``, so nothing below nudges about a request that is over;
   :data:`BATCH` per write transaction, :data:`EXPIRE_BATCHES` transactions
   per tick, so a backlog never holds the write lock for long;
2. reminders: each pending request of a tier with
   ``reminders.<tier>.remind_after_minutes`` that has waited that long since
   it was proposed gets one ``approval_reminder_sent`` event addressed to the
   eligible approvers who have not voted (never the requester);
3. escalations: likewise after ``escalate_after_minutes``, one
   ``approval_escalated`` event addressed to the ``escalation`` lists of the
   request's owner team and of the teams its quorum names (inventory
   ``teams.<team>.escalation``);
4. expiry warnings: a pending request whose window closes within
   ``warn_before_expiry_minutes`` gets one ``approval_expiring_warned`` event
   addressed to the eligible approvers who have not voted;
5. notification dispatch (:func:`hitlgate.engine.notify.dispatch`), which
   turns these events, like every other, into messages.

Exactly one event per threshold per request, however many replicas tick at
once: each nudge is written in a write transaction (which every writer
serialises on the audit chain's head row), its candidates are read again
under that lock, and a row in ``request_nudges`` whose primary key is
(request id, kind) commits together with the event; a second writer finds
the row and skips. Requests that are no longer pending (granted, rejected,
expired, revoked) are never nudged; a request whose threshold passed while
nobody ticked is nudged once, late, not once per missed tick.

``serve`` runs a tick every ``reminders.tick_seconds`` on the one replica
holding the database lease (:func:`run_tick_under_lease`); ``hitlgate tick``
runs one (cron) under the same lease.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from hitlgate.engine.approve import lifecycle
from hitlgate.engine.approve.quorum import can_fill
from hitlgate.engine.config import REMINDER_TIERS
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger import lease
from hitlgate.engine.ledger.store import Request, Transaction

if TYPE_CHECKING:
    from hitlgate.engine.approve.workflow import Engine

log = logging.getLogger(__name__)

#: The lease every replica competes for before it ticks.
LEASE_NAME = "hitlgate.tick"

#: Requests nudged per kind per tick; the rest wait for the next tick (oldest first).
BATCH = 500
#: Expiry transactions per tick (each at most BATCH requests of each kind); a longer backlog waits a tick.
EXPIRE_BATCHES = 10

#: Nudge kind -> the audit event it appends.
REMINDER = "reminder"
ESCALATION = "escalation"
EXPIRING = "expiring"
EVENT_KINDS = {
    REMINDER: "approval_reminder_sent",
    ESCALATION: "approval_escalated",
    EXPIRING: "approval_expiring_warned",
}


@dataclass(frozen=True)
class Nudge:
    """One reminder, escalation or expiry warning sent (its audit event's request, kind and addressees)."""

    request_id: str
    kind: str
    addressees: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"request_id": self.request_id, "event": EVENT_KINDS[self.kind], "addressees": list(self.addressees)}


@dataclass(frozen=True)
class TickReport:
    """What one tick did."""

    at: datetime
    expired: tuple[str, ...] = ()
    nudges: tuple[Nudge, ...] = ()
    #: The notification dispatcher's report (its ``to_dict()``), or None when notify is not installed.
    notifications: dict[str, Any] | None = None
    #: False when another replica held the lease, so this one did nothing.
    ran: bool = True
    holder: str | None = None

    def of(self, kind: str) -> list[Nudge]:
        """The nudges of one kind."""
        return [n for n in self.nudges if n.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``hitlgate --json tick``)."""
        return {
            "ran": self.ran,
            "at": self.at.isoformat(),
            "holder": self.holder,
            "expired": list(self.expired),
            "reminders": [n.to_dict() for n in self.of(REMINDER)],
            "escalations": [n.to_dict() for n in self.of(ESCALATION)],
            "expiry_warnings": [n.to_dict() for n in self.of(EXPIRING)],
            "notifications": self.notifications,
        }

    def describe(self) -> str:
        """One line for people."""
        if not self.ran:
            return (f"a running `hitlgate serve` (or another tick) holds the tick lease ({self.holder}) and does "
                    "this work itself; nothing done")
        parts = [f"{len(self.expired)} expired", f"{len(self.of(REMINDER))} reminder(s)",
                 f"{len(self.of(ESCALATION))} escalation(s)", f"{len(self.of(EXPIRING))} expiry warning(s)"]

        return "tick: " + ", ".join(parts)


def run_tick(engine: Engine, now: datetime | None = None) -> TickReport:
    """Run one tick at ``now`` (the engine clock if None); see the module docstring.

    Safe to run on several replicas at once (each nudge is written once),
    but meant to run on one at a time (:func:`run_tick_under_lease`), so the
    work is not done twice over.
    """
    at = engine.now(now)
    expired: list[str] = []
    for _ in range(EXPIRE_BATCHES):
        # Batches of their own transactions: votes and grants get the write lock in between.
        batch = [r.id for r in engine.expire_due(now=at, limit=BATCH)]
        expired += batch
        if len(batch) < BATCH:
            break
    nudges: list[Nudge] = []
    settings = engine.config.reminders
    for tier in REMINDER_TIERS:
        rules = settings.tiers.get(tier)
        if rules is None:
            continue
        if rules.remind_after_minutes is not None:
            nudges += _nudge(engine, at, tier, REMINDER,
                             created_before=at - timedelta(minutes=rules.remind_after_minutes),
                             detail={"after_minutes": rules.remind_after_minutes})
        if rules.escalate_after_minutes is not None:
            nudges += _nudge(engine, at, tier, ESCALATION,
                             created_before=at - timedelta(minutes=rules.escalate_after_minutes),
                             detail={"after_minutes": rules.escalate_after_minutes})
        if rules.warn_before_expiry_minutes is not None:
            nudges += _nudge(engine, at, tier, EXPIRING,
                             expires_before=at + timedelta(minutes=rules.warn_before_expiry_minutes),
                             detail={"before_minutes": rules.warn_before_expiry_minutes})
    return TickReport(at=at, expired=tuple(expired), nudges=tuple(nudges), notifications=_dispatch(engine, at))


def run_tick_under_lease(engine: Engine, holder: str, *, ttl: timedelta | None = None,
                         now: datetime | None = None) -> TickReport:
    """Take (or renew) the tick lease for ``holder``; run a tick only if it is held.

    ``ttl`` defaults to ``reminders.lease_seconds``. Returns a report with
    ``ran=False`` (naming the holder) when another replica holds the lease.
    """
    at = engine.now(now)
    span = ttl if ttl is not None else timedelta(seconds=engine.config.reminders.lease_seconds)
    if not lease.acquire(engine.store, LEASE_NAME, holder, ttl=span, now=at):
        state = lease.current(engine.store, LEASE_NAME)
        return TickReport(at=at, ran=False, holder=None if state is None else state.holder)
    report = run_tick(engine, at)
    return dataclasses.replace(report, holder=holder)


def _dispatch(engine: Engine, now: datetime) -> dict[str, Any] | None:
    """Run the notification dispatcher when the notify wing is present; its report as JSON."""
    try:
        from hitlgate.engine.notify.dispatcher import dispatch
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.startswith("hitlgate."):
            return None
        raise
    result = dispatch(engine, now)
    to_dict = getattr(result, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else {"result": str(result)}


# -- choosing whom to tell -----------------------------------------------------


def eligible_addressees(engine: Engine, req: Request) -> tuple[str, ...]:
    """Registered approvers who could fill a place still open in ``req``'s quorum and have not voted.

    Never the requester (who could not vote anyway). When every named slot
    is filled but more approvals are needed, anyone who fits any slot is.
    """
    from hitlgate.engine.approve.workflow import same_person

    registry = engine.approvers.all()
    progress = engine.progress_of(req)
    slots = progress.missing_slots or (req.decision.quorum.slots if progress.missing_any else ())
    voted = {v.approver for v in req.votes}
    return tuple(sorted(
        name for name, a in registry.items()
        if name not in voted and not same_person(name, req.requester) and any(can_fill(s, a) for s in slots)
    ))


def request_teams(engine: Engine, req: Request) -> tuple[str, ...]:
    """The request's owner team (from the inventory) and the teams its quorum names, in that order."""
    teams: list[str] = []
    target = req.proposal.get("action", {}).get("target")
    for section in ("identities", "workloads"):
        rec = engine.approvers.record(section, target) if isinstance(target, str) else None
        if isinstance(rec, dict) and isinstance(rec.get("owner"), str):
            teams.append(rec["owner"])
            break
    for slot in req.decision.quorum.slots:
        teams.extend(slot.teams)
    return tuple(dict.fromkeys(teams))


def escalation_addressees(engine: Engine, req: Request) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(addressees, teams)``: the ``escalation`` approvers of the request's teams, minus the requester."""
    from hitlgate.engine.approve.workflow import same_person

    teams = request_teams(engine, req)
    names: list[str] = []
    for team in teams:
        rec = engine.approvers.record("teams", team)
        if isinstance(rec, dict):
            names.extend(n for n in rec.get("escalation", ()) if isinstance(n, str))
    people = tuple(n for n in dict.fromkeys(names) if not same_person(n, req.requester))
    return people, teams


# -- writing nudges --------------------------------------------------------------


def _candidates(tx: Transaction, tier: str, kind: str, *, created_before: datetime | None,
                expires_before: datetime | None, now: datetime) -> list[str]:
    """Pending requests of ``tier`` past the threshold, with no ``kind`` nudge yet, oldest first."""
    r, n = t.requests, t.request_nudges
    q = (
        sa.select(r.c.id)
        .select_from(r.outerjoin(n, sa.and_(n.c.request_id == r.c.id, n.c.kind == kind)))
        .where(r.c.status == lifecycle.PENDING, r.c.tier == tier, r.c.expires_at > now, n.c.request_id.is_(None))
    )
    if created_before is not None:
        q = q.where(r.c.created_at <= created_before).order_by(r.c.created_at, r.c.id)
    if expires_before is not None:
        q = q.where(r.c.expires_at <= expires_before).order_by(r.c.expires_at, r.c.id)
    return [row[0] for row in tx.conn.execute(q.limit(BATCH))]


def _claim(tx: Transaction, request_id: str, kind: str, now: datetime) -> bool:
    """Insert the (request, kind) nudge row unless one exists; return whether this transaction inserted it."""
    dialect = postgresql if tx.conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(t.request_nudges)
        .values(request_id=request_id, kind=kind, at=now)
        .on_conflict_do_nothing(index_elements=[t.request_nudges.c.request_id, t.request_nudges.c.kind])
        .returning(t.request_nudges.c.request_id)
    )
    return tx.conn.execute(stmt).first() is not None


def _nudge(engine: Engine, now: datetime, tier: str, kind: str, *, detail: dict[str, Any],
           created_before: datetime | None = None, expires_before: datetime | None = None) -> list[Nudge]:
    """Send every due ``kind`` nudge of ``tier``: one audit event and one nudge row per request."""
    with engine.store.read() as rtx:
        # Most ticks find nothing due: a read first spares them the write lock.
        if not _candidates(rtx, tier, kind, created_before=created_before, expires_before=expires_before, now=now):
            return []
    sent: list[Nudge] = []
    with engine.store.write() as tx:
        # Read again under the write lock: another replica may have sent some meanwhile.
        for rid in _candidates(tx, tier, kind, created_before=created_before, expires_before=expires_before, now=now):
            req = tx.get_request(rid)
            if req.status != lifecycle.PENDING or now >= req.expires_at:
                continue
            payload: dict[str, Any] = {"tier": tier, **detail}
            if kind == ESCALATION:
                people, teams = escalation_addressees(engine, req)
                payload["teams"] = list(teams)
            else:
                people = eligible_addressees(engine, req)
            if kind == EXPIRING:
                payload["expires_at"] = req.expires_at.isoformat()
            payload["quorum"] = engine.progress_of(req).describe()
            if not _claim(tx, rid, kind, now):
                continue
            payload["addressees"] = list(people)
            engine.audit_log.append(tx, EVENT_KINDS[kind], req, payload, now)
            sent.append(Nudge(rid, kind, people))
            if not people:
                log.warning("request %s: %s with nobody to address (%s)", rid, EVENT_KINDS[kind],
                            "no escalation list for its teams" if kind == ESCALATION else "no eligible approver left")
    return sent


def nudges_of(engine: Engine, request_id: str) -> Sequence[str]:
    """The kinds of nudge already sent for a request (from ``request_nudges``)."""
    with engine.store.read() as tx:
        rows: Iterable[Any] = tx.conn.execute(
            sa.select(t.request_nudges.c.kind).where(t.request_nudges.c.request_id == request_id)
        )
        return sorted(r[0] for r in rows)

"""The dispatcher: audit events after the cursor become notifications, then deliveries are attempted.

:func:`dispatch` runs in two steps (Contract A of issue 12):

1. **Enqueue**, in one write transaction of the store (which holds the
   store's write lock, so two dispatchers on one database take turns):
   read the cursor, pass over the events older than
   ``max_event_age_seconds`` (up to :data:`STALE_SCAN` of them, reading
   only their seq and time), read at most :data:`BATCH_EVENTS` audit
   events after that, turn each into at most one notification
   (:func:`message_for`), route it (``notifications.routes``), add one
   outbox row per channel, and move the cursor past the events read.
   Either all of that commits or none of it, and an outbox row is unique
   per (message, channel), so every event is enqueued once even if
   someone moves the cursor back; a cursor moved past the chain's head is
   put back to the last event enqueued.
2. **Deliver**, outside any transaction that an approval waits for: claim
   one due row at a time (a lease per row, so two dispatchers never send
   one row at once), call the channel's plugin (each attempt has one
   deadline in all), and record the attempt, only if the row is still
   this dispatcher's: delivered; due again after a doubling backoff; or
   ``dead`` after ``max_attempts``. A channel that failed is skipped for
   the rest of the dispatch, and no attempt starts after
   :data:`DELIVERY_BUDGET_SECONDS`. A receiver that is down costs the
   dispatcher one timeout per tick and never blocks a vote, a grant, a
   warrant or the other channels. Delivery is at least once: a
   dispatcher killed after sending but before recording leaves a lease
   that lapses, and the row is sent again with the same ``webhook-id``.

A notification addresses the owner team of the request's target (from the
trusted inventory, never from the proposal) and the approvers eligible
under the recorded decision's quorum (never the requester), not everyone;
an escalation also addresses the people the escalation event names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hitlgate.engine._safeparse import shorten
from hitlgate.engine._time import format_time
from hitlgate.engine.approve.quorum import can_fill
from hitlgate.engine.ledger.audit import AuditEvent
from hitlgate.engine.ledger.store import Request, Transaction
from hitlgate.engine.notify import outbox
from hitlgate.engine.notify.plugins import Message, Notifier, Recipient, one_line
from hitlgate.engine.notify.settings import NotificationSettings
from hitlgate.errors import HitlgateError

if TYPE_CHECKING:
    from hitlgate.engine.approve.workflow import Engine

log = logging.getLogger(__name__)

#: Audit events read per enqueue transaction (the rest wait for the next tick).
BATCH_EVENTS = 200
#: Outbox rows attempted per dispatch.
BATCH_DELIVERIES = 100
#: Old events passed over per enqueue transaction, reading only their seq and time.
STALE_SCAN = 20_000
#: No delivery attempt starts later than this into a dispatch (the rest wait for the next tick).
DELIVERY_BUDGET_SECONDS = 20.0

#: Audit kind -> notification event. Kinds not listed (proposed, consumed, warrant_refused, api keys...) notify nobody.
EVENT_OF_KIND = {
    "decided": "request.pending",  # Only when the decision left the request pending (see message_for).
    "approved": "request.vote",
    "rejected": "request.rejected",
    "granted": "request.granted",
    "revoked": "request.revoked",
    "expired": "request.expired",
    "executed": "request.executed",
    "execution_failed": "request.failed",
    "execution_unknown": "request.failed",
    # Appended by the reminders (hitlgate.engine.tick).
    "approval_reminder_sent": "request.reminder",
    "approval_escalated": "request.escalated",
    "approval_expiring_warned": "request.expiring",
}

#: Events for which approvers who already voted are not addressed (they have nothing left to do).
_STILL_WAITING = frozenset({"request.pending", "request.reminder", "request.expiring", "request.escalated"})


@dataclass
class DispatchReport:
    """What one :func:`dispatch` did."""

    cursor: int = 0
    events: int = 0
    enqueued: int = 0
    skipped_stale: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


def public_url(engine: Engine) -> str:
    """The console's origin: ``server.public_url`` when configured, else the server's own address."""
    server = engine.config.server
    settings = settings_of(engine)
    url = getattr(server, "public_url", None) or (settings.public_url if settings is not None else "")
    return str(url).rstrip("/") if url else f"http://{server.host}:{server.port}"


def _owner_teams(engine: Engine, req: Request) -> tuple[str, ...]:
    target = str(req.action.get("target", ""))
    for section in ("identities", "workloads"):
        rec = engine.approvers.record(section, target)
        if isinstance(rec, Mapping) and isinstance(rec.get("owner"), str):
            return (rec["owner"],)
    return ()


def _recipient(engine: Engine, name: str) -> Recipient:
    rec = engine.approvers.record("approvers", name)
    email = rec.get("email") if isinstance(rec, Mapping) else None
    return Recipient(name, email if isinstance(email, str) else None)


def eligible_approvers(engine: Engine, req: Request, *, skip_voters: bool) -> tuple[Recipient, ...]:
    """The registered approvers who could fill a place in the request's quorum, never the requester."""
    from hitlgate.engine.approve.workflow import same_person

    quorum = req.decision.quorum
    if quorum.required < 1:
        return ()
    voted = {v.approver for v in req.votes} if skip_voters else set()
    any_one = quorum.required > len(quorum.slots)
    names = [
        a.name for a in engine.approvers.all().values()
        if (any_one or any(can_fill(s, a) for s in quorum.slots))
        and not same_person(a.name, req.requester) and a.name not in voted
    ]
    return tuple(_recipient(engine, n) for n in sorted(names))


def _window_closes(req: Request) -> datetime:
    """When the approval window closes: the proposal plus the decision's ``ttl_seconds``.

    Not ``req.expires_at``: once the request is granted that is the warrant's
    deadline, and a notification made after the grant (a tick that caught up
    late) would name it as the approval window.
    """
    return req.created_at + timedelta(seconds=req.decision.ttl_seconds)


def _summary(event: str, ev: AuditEvent, req: Request) -> str:
    action = req.action
    head = (f"{one_line(str(action.get('type', '?')), 64)} on {one_line(str(action.get('target', '?')), 120)} "
            f"({req.tier}, requested by {one_line(req.requester, 80)})")
    p = ev.payload
    tail = {
        "request.pending": f"waits for {req.decision.quorum.required} approval(s) until "
                           f"{format_time(_window_closes(req))}",
        "request.vote": f"approved by {one_line(str(p.get('approver', '?')), 80)}",
        "request.rejected": f"rejected by {one_line(str(p.get('approver', '?')), 80)}",
        "request.granted": "granted" + (" automatically (auto_allow)" if p.get("reason") == "auto_allow" else ""),
        "request.revoked": f"revoked by {one_line(str(p.get('by', '?')), 80)}",
        "request.expired": "expired: " + one_line(str(p.get("reason", "")), 160),
        "request.executed": "executed",
        "request.failed": ("execution failed: " if ev.kind == "execution_failed" else "outcome unknown: ")
        + one_line(str(p.get("detail") or p.get("reason") or ""), 160),
        "request.reminder": "still waits for approval",
        # Who it was escalated to, so a chat channel's reader sees whose turn it is.
        "request.escalated": "escalated" + (f" to {one_line(', '.join(_named_people(p)[:10]), 200)}"
                                            if _named_people(p) else "") + ": still waits for approval",
        "request.expiring": f"approval window closes at {format_time(_window_closes(req))}",
    }[event]
    return f"{head}: {tail}"


def _named_people(payload: Mapping[str, Any]) -> list[str]:
    """Approver names an escalation or reminder event lists (the reminders' payload, whatever key it uses)."""
    for key in ("addressees", "escalation", "recipients", "approvers"):
        value = payload.get(key)
        if isinstance(value, list):
            return [str(v) for v in value if isinstance(v, str)][:100]
    return []


def message_for(engine: Engine, tx: Transaction, ev: AuditEvent, *, url: str) -> Message | None:
    """The notification an audit event makes, or None (not a notifying kind, or no such request)."""
    event = EVENT_OF_KIND.get(ev.kind)
    if event is None or ev.request_id is None:
        return None
    if ev.kind == "decided" and ev.payload.get("status") != "pending":
        return None
    try:
        req = tx.get_request(ev.request_id)
    except HitlgateError as exc:
        # Its approvers then hear nothing of this event: said where the operator looks.
        log.warning("no notification for audit event %s: request %s cannot be read: %s", ev.seq,
                    shorten(ev.request_id, 60), exc)
        return None
    approvers = list(eligible_approvers(engine, req, skip_voters=event in _STILL_WAITING))
    if event == "request.escalated":
        known = {a.name for a in approvers}
        approvers += [_recipient(engine, n) for n in _named_people(ev.payload) if n not in known]
    data: dict[str, Any] = {
        "audit_seq": ev.seq,
        "audit_kind": ev.kind,
        "status": req.status,
        "action": {"type": req.action.get("type"), "target": req.action.get("target")},
        "action_digest": req.action_digest,
        "requester": req.requester,
        "expires_at": format_time(req.expires_at),
        "quorum": req.decision.quorum.to_dict(),
    }
    if ev.kind in ("approved", "rejected"):
        data["vote"] = {"approver": ev.payload.get("approver"), "verdict": "approve" if ev.kind == "approved"
                        else "reject"}
    return Message(
        # Unique across databases (the event's chain hash) and stable across retries.
        id=f"msg_{ev.seq}_{ev.hash.removeprefix('sha256:')[:16]}",
        event=event,
        at=ev.at,
        request_id=req.id,
        tier=req.tier,
        summary=_summary(event, ev, req),
        url=f"{url}/ui/requests/{req.id}",
        data=data,
        teams=_owner_teams(engine, req),
        approvers=tuple(approvers),
    )


def settings_of(engine: Engine) -> NotificationSettings | None:
    """The engine's ``notifications:`` settings (None: not configured)."""
    value = getattr(engine.config, "notifications", None)
    return value if isinstance(value, NotificationSettings) else None


def _past_stale(tx: Transaction, start: int, cutoff: datetime) -> tuple[int, int, int]:
    """``(last, read, skipped)``: the seq just before the first event after ``start`` at or after ``cutoff``.

    ``read`` counts the events passed over, ``skipped`` those of them that would have notified.

    Reads only (seq, at, kind), :data:`STALE_SCAN` at most, so a backlog of old
    events (notifications switched on for a database with a long history)
    is passed over in a few ticks instead of :data:`BATCH_EVENTS` at a time,
    while the events that are still fresh wait for no one.
    """
    last, read, skipped = start, 0, 0
    for seq, at, kind in tx.event_times(after_seq=start, limit=STALE_SCAN):
        if at >= cutoff:
            break
        last, read, skipped = seq, read + 1, skipped + (kind in EVENT_OF_KIND)
    return last, read, skipped


def enqueue_new(engine: Engine, now: datetime, report: DispatchReport | None = None) -> DispatchReport:
    """Step 1: turn the audit events after the cursor into outbox rows and move the cursor, in one transaction."""
    report = report if report is not None else DispatchReport()
    settings = settings_of(engine) or NotificationSettings()
    url = public_url(engine)
    max_age = timedelta(seconds=settings.max_event_age_seconds)
    with engine.store.write() as tx:
        start = outbox.cursor(tx)
        head = tx.head()
        head_seq = head.seq if head is not None else 0
        if start > head_seq:
            # Only an edit in the database puts the cursor past the chain's head; left there, the events
            # appended up to it would never be notified. It goes back to the last event that was enqueued
            # (re-reading what follows is harmless: enqueueing is idempotent), loudly.
            back = min(head_seq, outbox.last_enqueued_seq(tx))
            problem = (f"the notification cursor (#{start}) was past the audit chain's head (#{head_seq}); "
                       f"reset to #{back}, the last event enqueued")
            log.error("%s: someone edited the notification_cursor row", problem)
            report.errors.append(problem)
            start = back
            outbox.advance(tx, start, now)
        last = start
        if not settings.routes:
            # Nothing is routed anywhere: move past the whole chain without reading it.
            last = head_seq
        else:
            last, passed, skipped = _past_stale(tx, start, now - max_age)
            report.events += passed
            report.skipped_stale += skipped
        read = 0
        for ev in tx.iter_events(after_seq=last, chunk=BATCH_EVENTS) if settings.routes else ():
            if read >= BATCH_EVENTS:
                break
            read += 1
            last = ev.seq
            report.events += 1
            if ev.kind in EVENT_OF_KIND:
                if now - ev.at > max_age:
                    report.skipped_stale += 1
                else:
                    message = message_for(engine, tx, ev, url=url)
                    if message is not None:
                        for channel in settings.channels_for(message.event, message.tier, message.teams):
                            if outbox.enqueue(tx, message, channel, audit_seq=ev.seq, now=now):
                                report.enqueued += 1
        if last != start:
            outbox.advance(tx, last, now)
        report.cursor = last
    return report


def deliver_due(engine: Engine, now: datetime, report: DispatchReport | None = None, *,
                notifiers: Mapping[str, Notifier] | None = None,
                budget_seconds: float = DELIVERY_BUDGET_SECONDS) -> DispatchReport:
    """Step 2: attempt the due outbox rows, outside any approval transaction; record every attempt.

    Rows are claimed one at a time, just before their attempt, so a row's
    lease never runs out while it waits behind slow receivers. A channel
    whose attempt failed is not tried again in this dispatch (its other
    rows wait for the next tick), so one dead receiver costs one timeout
    per tick, not one per row, and never starves the other channels. No
    new attempt starts after ``budget_seconds``: a tick always ends soon.
    """
    report = report if report is not None else DispatchReport()
    settings = settings_of(engine) or NotificationSettings()
    if notifiers is None:
        notifiers = settings.notifiers(public_url(engine)) if settings.channels else {}
    timeouts = [float(getattr(n, "timeout", 10.0)) for n in notifiers.values()]
    # The lease outlives an attempt's worst case (connect + read timeouts), so nobody else takes the row meanwhile.
    lease = timedelta(seconds=3 * max(timeouts, default=10.0) + 30)
    began = time.monotonic()
    failing: set[str] = set()
    for _ in range(BATCH_DELIVERIES):
        elapsed = time.monotonic() - began
        if elapsed >= budget_seconds:
            break
        # The claim's clock moves on with the dispatch, so a row claimed late keeps its whole lease.
        won = outbox.claim_due(engine.store, now + timedelta(seconds=elapsed), limit=1, lease=lease,
                               skip_channels=failing)
        if not won:
            break
        row = won[0]
        notifier = notifiers.get(row.channel)
        started = time.monotonic()
        error = ""
        if notifier is None:
            error = f"channel {row.channel!r} is no longer configured"
        else:
            try:
                notifier.deliver(Message.from_json(row.message))
            except Exception as exc:  # noqa: BLE001 - any failure of a plugin is a failed attempt, retried later.
                error = str(exc) or type(exc).__name__
        took = int((time.monotonic() - started) * 1000)
        if error:
            failing.add(row.channel)
        status = outbox.record_attempt(engine.store, row, ok=not error, error=error, now=now, duration_ms=took,
                                       max_attempts=settings.max_attempts,
                                       retry_after=settings.backoff(row.attempts + 1))
        if status == outbox.DELIVERED:
            report.delivered += 1
            log.info("notification %s (%s) delivered to %s", row.id, row.event, row.channel)
        elif status == outbox.SUPERSEDED:
            log.warning("notification %s (%s) to %s: the row changed hands during the attempt (its lease lapsed or "
                        "it was retried); this attempt's result is logged only", row.id, row.event, row.channel)
        else:
            report.errors.append(f"{row.id} {row.channel}: {one_line(error, 200)}")
            if status == outbox.DEAD:
                report.dead += 1
                log.error("notification %s (%s) to %s is dead after %d attempts: %s", row.id, row.event,
                          row.channel, row.attempts + 1, one_line(error, 200))
            else:
                report.retrying += 1
                log.warning("notification %s (%s) to %s failed (attempt %d): %s", row.id, row.event, row.channel,
                            row.attempts + 1, one_line(error, 200))
    return report


def dispatch(engine: Engine, now: datetime) -> DispatchReport:
    """Enqueue the notifications of new audit events, then attempt the due deliveries (see the module docstring).

    Called by :func:`hitlgate.engine.tick.run_tick` (``hitlgate tick``, and
    ``serve`` under its lease); safe to run from several replicas at once.
    Without ``notifications:`` configured it does nothing; with channels but
    no routes it only moves the cursor.
    """
    if settings_of(engine) is None:
        # Nothing configured: no transaction at all. Events from before the
        # section is added are passed over by max_event_age_seconds.
        return DispatchReport()
    report = enqueue_new(engine, now)
    return deliver_due(engine, now, report)

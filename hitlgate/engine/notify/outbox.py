"""The notification outbox, the delivery log and the dispatcher's cursor, in the state store.

Rows move ``pending`` → ``delivered``, or ``pending`` → ``dead`` after
``max_attempts`` failed attempts; ``hitlgate notifications retry ID`` moves
a row back to ``pending``. Nothing else changes a row's status.

Enqueueing happens in the caller's :meth:`Store.write` transaction (the one
that advances the cursor). Claiming a row and recording an attempt are
short transactions of their own that do not take the audit chain's lock,
so a slow receiver never holds anything an approval waits for. A claim is a
conditional update (``claimed_until`` lapsed): of two dispatchers, only
one sees its update change the row, on SQLite (one writer at a time) and
on PostgreSQL (the second update waits for the first's row lock, then
re-reads the row and finds the lease taken).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from hitlgate.engine._time import format_time
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.store import Store, Transaction, transaction
from hitlgate.engine.notify.plugins import MAX_ERROR_CHARS, Message, one_line
from hitlgate.errors import InputError, NotFoundError, StorageError

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
STATUSES = (PENDING, DELIVERED, DEAD)
#: What :func:`record_attempt` returns when the row had meanwhile stopped being the attempt's (not a status).
SUPERSEDED = "superseded"

_o = t.notification_outbox.c


@dataclass(frozen=True)
class OutboxRow:
    """One notification for one channel, and where its delivery stands."""

    id: int
    message_id: str
    channel: str
    event: str
    request_id: str | None
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str
    message: str
    #: The delivery lease on the row (a claim's own value when :func:`claim_due` returned the row).
    claimed_until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the CLI (the message's summary, not its whole body)."""
        return {
            "id": self.id, "message_id": self.message_id, "channel": self.channel, "event": self.event,
            "request_id": self.request_id, "status": self.status, "attempts": self.attempts,
            "created_at": format_time(self.created_at), "next_attempt_at": format_time(self.next_attempt_at),
            "delivered_at": None if self.delivered_at is None else format_time(self.delivered_at),
            "last_error": self.last_error, "summary": _summary(self.message),
        }


def _summary(message: str) -> str:
    """The stored message's summary; a row someone edited into something else does not break a listing."""
    try:
        doc = json.loads(message)
    except ValueError:
        return "(unreadable message)"
    summary = doc.get("summary") if isinstance(doc, dict) else None
    return one_line(summary, 300) if isinstance(summary, str) else "(unreadable message)"


def _row(r: Any) -> OutboxRow:
    return OutboxRow(id=int(r["id"]), message_id=r["message_id"], channel=r["channel"], event=r["event"],
                     request_id=r["request_id"], status=r["status"], attempts=int(r["attempts"]),
                     created_at=r["created_at"], next_attempt_at=r["next_attempt_at"],
                     delivered_at=r["delivered_at"], last_error=r["last_error"] or "", message=r["message"],
                     claimed_until=r["claimed_until"])


@contextmanager
def _short_write(store: Store) -> Iterator[Connection]:
    """A write transaction on the outbox tables alone (no audit chain lock; see the module docstring)."""
    if store.read_only:
        raise StorageError(f"the state store {store.url_for_people} is read-only: {store.read_only_reason}",
                           code="read_only")
    try:
        with store.engine.connect() as conn:
            with transaction(conn, write=True):
                yield conn
    except SQLAlchemyError as exc:
        raise StorageError(f"state store {store.url_for_people}: notification outbox: {exc}") from exc


# -- the cursor and enqueueing (inside the caller's Store.write transaction) ------


def cursor(tx: Transaction) -> int:
    """The last audit seq already turned into notifications."""
    seq = tx.conn.execute(sa.select(t.notification_cursor.c.seq).where(t.notification_cursor.c.id == 1)).scalar()
    if seq is None:
        raise StorageError("the notification cursor row is missing (schema migration 5 creates it)")
    return int(seq)


def advance(tx: Transaction, seq: int, now: datetime) -> None:
    """Move the cursor to ``seq`` (in the transaction that enqueued everything up to it)."""
    tx.conn.execute(t.notification_cursor.update().where(t.notification_cursor.c.id == 1)
                    .values(seq=seq, updated_at=now))


def last_enqueued_seq(tx: Transaction) -> int:
    """The audit seq of the newest event that has an outbox row (0: none)."""
    return int(tx.conn.execute(sa.select(sa.func.max(_o.audit_seq))).scalar() or 0)


def enqueue(tx: Transaction, message: Message, channel: str, *, audit_seq: int, now: datetime) -> bool:
    """Add one (message, channel) row, due now; False when it is already there.

    A message id is derived from its audit event, so the same event seen
    again (a cursor someone moved back in the database) finds its rows and
    adds nothing: the unique key (message id, channel) makes enqueueing
    idempotent instead of failing every later tick.
    """
    dialect = postgresql if tx.conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(t.notification_outbox).values(
        message_id=message.id, channel=channel, event=message.event, request_id=message.request_id,
        audit_seq=audit_seq, message=message.to_json(), status=PENDING, attempts=0, created_at=now,
        next_attempt_at=now, claimed_until=None, delivered_at=None, last_error="",
    ).on_conflict_do_nothing(index_elements=[_o.message_id, _o.channel]).returning(_o.id)
    return tx.conn.execute(stmt).first() is not None


# -- delivery (short transactions of their own) ------------------------------------


def claim_due(store: Store, now: datetime, *, limit: int, lease: timedelta,
              skip_channels: Collection[str] = ()) -> list[OutboxRow]:
    """Take the lease on up to ``limit`` due rows (none of ``skip_channels``); return those this caller won.

    Oldest first. Each returned row carries its claim (``claimed_until``),
    which :func:`record_attempt` checks.
    """
    due = sa.and_(_o.status == PENDING, _o.next_attempt_at <= now,
                  sa.or_(_o.claimed_until.is_(None), _o.claimed_until <= now))
    q = sa.select(t.notification_outbox).where(due)
    if skip_channels:
        q = q.where(_o.channel.not_in(sorted(skip_channels)))
    until = now + lease
    won: list[OutboxRow] = []
    with _short_write(store) as conn:
        rows = conn.execute(q.order_by(_o.id).limit(limit)).mappings().all()
        for r in rows:
            changed = conn.execute(t.notification_outbox.update().where(_o.id == r["id"], due)
                                   .values(claimed_until=until)
                                   .execution_options(preserve_rowcount=True)).rowcount
            if changed == 1:
                won.append(dataclasses.replace(_row(r), claimed_until=until))
    return won


def record_attempt(store: Store, row: OutboxRow, *, ok: bool, error: str, now: datetime, duration_ms: int,
                   max_attempts: int, retry_after: float) -> str:
    """Log one attempt and move the row: delivered, due again after ``retry_after`` s, or dead. Return its status.

    :data:`SUPERSEDED` when the row was no longer this attempt's to move (its lease lapsed and another
    dispatcher took it, or someone retried it): the attempt is logged, the row left as it is.
    """
    attempts = row.attempts + 1
    error = one_line(error, MAX_ERROR_CHARS)
    if ok:
        values: dict[str, Any] = {"status": DELIVERED, "delivered_at": now, "last_error": ""}
    elif attempts >= max_attempts:
        values = {"status": DEAD, "last_error": error}
    else:
        values = {"status": PENDING, "next_attempt_at": now + timedelta(seconds=retry_after), "last_error": error}
    # Only while the row is still ours: pending, under the claim this attempt was made on. A dispatcher
    # that stalled past its lease (another one may have delivered the row since), or a row an operator
    # retried meanwhile, must not be moved back by a late result.
    mine = [_o.id == row.id, _o.status == PENDING]
    mine.append(_o.claimed_until.is_(None) if row.claimed_until is None else _o.claimed_until == row.claimed_until)
    with _short_write(store) as conn:
        changed = conn.execute(t.notification_outbox.update().where(*mine)
                               .values(attempts=attempts, claimed_until=None, **values)
                               .execution_options(preserve_rowcount=True)).rowcount
        conn.execute(t.notification_deliveries.insert().values(
            outbox_id=row.id, attempt=attempts, at=now, ok=ok, error="" if ok else error, duration_ms=duration_ms))
    return str(values["status"]) if changed == 1 else SUPERSEDED


# -- operators: list, retry, dead letters ----------------------------------------


def list_rows(store: Store, *, status: str | None = None, limit: int = 50) -> list[OutboxRow]:
    """Outbox rows, newest first, optionally only those in ``status``."""
    if status is not None and status not in STATUSES:
        raise InputError(f"--status: {one_line(status, 40)!r} is not one of {', '.join(STATUSES)}")
    if not 1 <= limit <= 10_000:
        raise InputError(f"--limit: must be from 1 to 10000, not {limit}")
    q = sa.select(t.notification_outbox).order_by(_o.id.desc()).limit(limit)
    if status is not None:
        q = q.where(_o.status == status)
    with store.read() as tx:
        return [_row(r) for r in tx.conn.execute(q).mappings()]


def get_row(store: Store, row_id: int) -> OutboxRow:
    """One outbox row; :class:`NotFoundError` when there is none."""
    with store.read() as tx:
        r = tx.conn.execute(sa.select(t.notification_outbox).where(_o.id == row_id)).mappings().first()
    if r is None:
        raise NotFoundError(f"no notification with id {row_id} (hitlgate notifications list shows them)")
    return _row(r)


def attempts_of(store: Store, row_id: int) -> list[dict[str, Any]]:
    """The delivery log of one row, oldest first."""
    d = t.notification_deliveries.c
    with store.read() as tx:
        rows = tx.conn.execute(sa.select(t.notification_deliveries).where(d.outbox_id == row_id)
                               .order_by(d.id)).mappings().all()
    return [{"attempt": r["attempt"], "at": format_time(r["at"]), "ok": bool(r["ok"]), "error": r["error"],
             "duration_ms": r["duration_ms"]} for r in rows]


def retry(store: Store, row_id: int, now: datetime) -> OutboxRow:
    """Make a dead (or pending) row due now with a fresh attempt budget; a delivered one is refused."""
    with _short_write(store) as conn:
        r = conn.execute(sa.select(t.notification_outbox).where(_o.id == row_id)).mappings().first()
        if r is None:
            raise NotFoundError(f"no notification with id {row_id} (hitlgate notifications list shows them)")
        if r["status"] == DELIVERED:
            raise InputError(f"notification {row_id} was delivered at {format_time(r['delivered_at'])}; "
                             "nothing to retry", code="already_delivered")
        if r["status"] == PENDING and r["claimed_until"] is not None and r["claimed_until"] > now:
            # A dispatcher is attempting it right now; resetting the claim would let a second one send it too.
            raise InputError(f"notification {row_id} is being delivered right now (until "
                             f"{format_time(r['claimed_until'])} at the latest); see its result with "
                             f"`hitlgate notifications show {row_id}`", code="in_flight")
        conn.execute(t.notification_outbox.update().where(_o.id == row_id)
                     .values(status=PENDING, attempts=0, next_attempt_at=now, claimed_until=None))
        r = conn.execute(sa.select(t.notification_outbox).where(_o.id == row_id)).mappings().first()
    return _row(r)


@dataclass(frozen=True)
class DeadLetters:
    """How many notifications are dead, and the latest of them (for ``doctor``)."""

    count: int
    latest: OutboxRow | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"count": self.count, "latest": None if self.latest is None else self.latest.to_dict()}


def dead_letters(store: Store) -> DeadLetters:
    """Count the dead rows and read the latest (one indexed count, one row)."""
    with store.read() as tx:
        count = int(tx.conn.execute(sa.select(sa.func.count()).select_from(t.notification_outbox)
                                    .where(_o.status == DEAD)).scalar_one())
        r = tx.conn.execute(sa.select(t.notification_outbox).where(_o.status == DEAD)
                            .order_by(_o.id.desc()).limit(1)).mappings().first()
    return DeadLetters(count, None if r is None else _row(r))

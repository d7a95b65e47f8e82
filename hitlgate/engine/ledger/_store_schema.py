"""Tables of the state store and the migrations that create them.

Alembic is not a dependency, so schema changes are a small explicit list of
migrations (:data:`MIGRATIONS`), applied in order by ``Store.open()`` and
recorded in ``schema_version``. Each migration is a function of one
connection, run inside the transaction that records its version, so a
failed migration leaves nothing half-applied (PostgreSQL has transactional
DDL; SQLite does too for ``CREATE TABLE``/``CREATE INDEX``).

Times are stored as fixed-width ISO 8601 UTC strings (``UtcTime``), so they
compare correctly as text on every database and never lose their zone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from hitlgate.engine._time import format_time, parse_time, utcnow
from hitlgate.errors import StorageError

__all__ = ["format_time", "parse_time"]  # Re-exported: the store's text form of times.

class UtcTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime stored as fixed-width text."""

    impl = sa.String(32)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        """Aware datetime to stored text; a naive datetime is refused."""
        return None if value is None else format_time(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Stored text to an aware UTC datetime; text in another spelling is a corrupted store (StorageError)."""
        try:
            return None if value is None else parse_time(str(value))
        except ValueError as exc:
            # Written by the engine in one spelling only: anything else was written around it. Reads that
            # can name the row select the text and parse it themselves (votes, get_request, peek_request).
            raise StorageError(f"the state store holds a corrupted time: {exc}") from None


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("applied_at", UtcTime, nullable=False),
)

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("tier", sa.String(32), nullable=False),
    sa.Column("requester", sa.String(200), nullable=False),
    sa.Column("action_type", sa.String(64), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("action_digest", sa.String(80), nullable=False),
    sa.Column("proposal", sa.Text, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("policy_revision", sa.String(80), nullable=False),
    sa.Column("created_at", UtcTime, nullable=False),
    sa.Column("expires_at", UtcTime, nullable=False),
    sa.Column("updated_at", UtcTime, nullable=False),
    sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
)

# One vote per person per request, enforced by the database: a second vote
# can never overwrite or add to the first, whatever the code above does.
votes = sa.Table(
    "votes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), sa.ForeignKey("requests.id"), nullable=False),
    sa.Column("approver", sa.String(200), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("statement", sa.Text, nullable=False),
    sa.Column("signed_at", UtcTime, nullable=False),
    sa.Column("recorded_at", UtcTime, nullable=False),
    sa.UniqueConstraint("request_id", "approver", name="uq_votes_request_approver"),
)

# At most one warrant per request (unique request_id), whoever asks and
# however many processes ask at once.
warrants = sa.Table(
    "warrants",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("request_id", sa.String(64), sa.ForeignKey("requests.id"), nullable=False, unique=True),
    sa.Column("token", sa.Text, nullable=False),
    sa.Column("kid", sa.String(100), nullable=False),
    sa.Column("issued_at", UtcTime, nullable=False),
    sa.Column("expires_at", UtcTime, nullable=False),
)

# A warrant id can be consumed once: the primary key is the single-use check.
consumed = sa.Table(
    "consumed_warrants",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("request_id", sa.String(64), sa.ForeignKey("requests.id"), nullable=False),
    sa.Column("consumed_at", UtcTime, nullable=False),
)

revocations = sa.Table(
    "revocations",
    metadata,
    sa.Column("request_id", sa.String(64), sa.ForeignKey("requests.id"), primary_key=True),
    sa.Column("revoked_by", sa.String(200), nullable=False),
    sa.Column("statement", sa.Text, nullable=False),
    sa.Column("revoked_at", UtcTime, nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", UtcTime, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(80), nullable=False),
    sa.Column("hash", sa.String(80), nullable=False),
)

# One row. Every write transaction locks it first (SELECT ... FOR UPDATE on
# PostgreSQL; SQLite's BEGIN IMMEDIATE locks the whole file), which both
# serialises appends to the hash chain and orders concurrent writers.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(80), nullable=False),
)

checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("head_hash", sa.String(80), nullable=False),
    sa.Column("at", UtcTime, nullable=False),
    sa.Column("token", sa.Text, nullable=False),
    sa.Column("kid", sa.String(100), nullable=False),
)


# -- the inventory in the database (``inventory: {source: database}``) --------
#
# One row per record, keyed by (section, id); ``record`` is its canonical
# JSON text (sorted keys, no spaces), NULL for a tombstone, so a deleted
# record reaches every poller as a change. Every change takes the next
# ``version`` (unique, indexed): the change feed is "rows with version > v",
# read through that index, never a scan. See hitlgate/engine/decide/inventory_db.py.
inventory_records = sa.Table(
    "inventory_records",
    metadata,
    sa.Column("section", sa.String(16), primary_key=True),
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("record", sa.Text, nullable=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Index("ix_inventory_records_version", "version", unique=True),
)

# Who refers to whom: one row per reference a live record makes (an owner
# team, a used_by workload, a partner, an approver's team, and the
# approver's normalised public key under ref_section "approver_key"). A
# delete asks this index whether anything still refers to the record, and a
# put asks it whether a key is already someone else's, without scanning.
inventory_refs = sa.Table(
    "inventory_refs",
    metadata,
    sa.Column("section", sa.String(16), primary_key=True),
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("field", sa.String(32), primary_key=True),
    sa.Column("ref_section", sa.String(16), nullable=False),
    sa.Column("ref_id", sa.String(200), nullable=False),
    sa.Index("ix_inventory_refs_target", "ref_section", "ref_id"),
)

# One row (id 1): the version of the last committed change and the
# inventory revision, a hash chain over every change (inventory_db.py).
# Every inventory write locks it first, which orders the writers.
inventory_meta = sa.Table(
    "inventory_meta",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("revision", sa.String(80), nullable=False),
    sa.Column("updated_at", UtcTime, nullable=False),
)

# -- the HTTP service (migration 4) ---------------------------------------------
#
# A proposal sent with an ``Idempotency-Key`` header: one row per (principal,
# key), written in the transaction that stores the request, so a retried
# proposal finds the request the first attempt stored, whichever replica it
# reaches. ``proposal_hash`` refuses the same key reused for another proposal.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("principal", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_id", sa.String(64), sa.ForeignKey("requests.id"), nullable=False),
    sa.Column("proposal_hash", sa.String(80), nullable=False),
    sa.Column("created_at", UtcTime, nullable=False),
)

# Bearer API keys of the HTTP service: only the SHA-256 of the secret part is
# stored (the secret is 256 random bits, so a plain hash cannot be reversed
# by guessing); ``id`` is the public part of the token that finds the row.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("secret_hash", sa.String(80), nullable=False),
    sa.Column("created_at", UtcTime, nullable=False),
    sa.Column("revoked_at", UtcTime, nullable=True),
    sa.Index("ix_api_keys_name", "name"),
)

# -- passkeys (migration 6) -------------------------------------------------------
#
# One-time enrolment links an admin creates for an approver (``hitlgate
# approvers enroll``): only the SHA-256 of the token is stored (256 random
# bits, so a plain hash cannot be reversed by guessing); ``used_at`` makes
# each link good for one passkey.
passkey_enrolments = sa.Table(
    "passkey_enrolments",
    metadata,
    sa.Column("token_hash", sa.String(80), primary_key=True),
    sa.Column("approver", sa.String(200), nullable=False),
    sa.Column("created_at", UtcTime, nullable=False),
    sa.Column("expires_at", UtcTime, nullable=False),
    sa.Column("used_at", UtcTime, nullable=True),
)

# Enrolled passkeys, bound to an approver of the trusted inventory. The
# public key is the credential's COSE key (base64url); ``sign_count`` is the
# last signature counter seen, which must increase on every use when non-zero.
passkey_credentials = sa.Table(
    "passkey_credentials",
    metadata,
    sa.Column("credential_id", sa.String(1400), primary_key=True),
    sa.Column("approver", sa.String(200), nullable=False),
    sa.Column("public_key", sa.Text, nullable=False),
    sa.Column("rp_id", sa.String(255), nullable=False),
    sa.Column("origin", sa.String(512), nullable=False),
    sa.Column("sign_count", sa.BigInteger, nullable=False),
    sa.Column("created_at", UtcTime, nullable=False),
    sa.Column("last_used_at", UtcTime, nullable=True),
    sa.Column("revoked_at", UtcTime, nullable=True),
    # HMAC-SHA256 (base64url) under the secret beside the engine keys over
    # what verifying trusts (credential id, approver, public key, RP ID,
    # origin), written at enrolment (migration 8): a row someone wrote into
    # the database without that secret never counts.
    sa.Column("binding", sa.String(64), nullable=True),
    sa.Index("ix_passkey_credentials_approver", "approver"),
)

# Challenges of the enrolment and login ceremonies, single use: answering
# one deletes its row, so an assertion cannot be replayed, on any replica.
webauthn_challenges = sa.Table(
    "webauthn_challenges",
    metadata,
    sa.Column("challenge", sa.String(100), primary_key=True),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("expires_at", UtcTime, nullable=False),
)

# -- console sessions ended by logout (migration 9) --------------------------------
#
# A console session is a signed cookie, checked without the store; logging out
# records the session's tag here until the cookie would have expired anyway, so
# a copy of the cookie (another tab, a stolen one) is refused from then on.
console_logouts = sa.Table(
    "console_logouts",
    metadata,
    sa.Column("session", sa.String(64), primary_key=True),
    sa.Column("approver", sa.String(200), nullable=False),
    sa.Column("expires_at", UtcTime, nullable=False),
)

# -- reminders, escalation and the replicas' lease (migration 7) ----------------
#
# A named lease: the one replica that holds ``name`` until ``expires_at`` runs
# the periodic work (hitlgate/engine/ledger/lease.py). Times are UtcTime
# text, which compares correctly as text on both databases.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", UtcTime, nullable=False),
)

# One row per reminder, escalation or expiry warning sent for a request,
# written in the transaction that appends its audit event: the primary key
# makes "exactly one per threshold per request" a fact of the database, even
# when two replicas tick at once (hitlgate/engine/tick.py).
request_nudges = sa.Table(
    "request_nudges",
    metadata,
    sa.Column("request_id", sa.String(64), sa.ForeignKey("requests.id"), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("at", UtcTime, nullable=False),
)

# Indexes that match the store's queries, so nothing on the decision,
# approval or listing path reads more than it returns (migration 3):
#
# * listing newest first, all or by status, one page at a time (keyset on
#   (created_at, id), never OFFSET): (created_at, id) and (status, created_at, id);
#   the latter also serves every lookup by status;
# * the expiry sweep: (status, expires_at);
# * a request's events in chain order (guard, warrant path, ``audit verify``
#   holding the tables against the chain request by request): (request_id, seq);
# * the few events ``audit verify`` must see before walking the chain
#   (keyring replaced, anchor re-initialised): a partial index holding only
#   those, so it costs nothing on the other appends;
# * consumed warrants of a request: (request_id).
RARE_KINDS = ("keyring_replaced", "anchor_reinitialized")

INDEXES = (
    sa.Index("ix_requests_created", requests.c.created_at, requests.c.id),
    sa.Index("ix_requests_status_created", requests.c.status, requests.c.created_at, requests.c.id),
    sa.Index("ix_requests_status_expires", requests.c.status, requests.c.expires_at),
    sa.Index("ix_audit_events_request_seq", audit_events.c.request_id, audit_events.c.seq),
    sa.Index(
        "ix_audit_events_rare_kinds",
        audit_events.c.kind,
        sqlite_where=audit_events.c.kind.in_(RARE_KINDS),
        postgresql_where=audit_events.c.kind.in_(RARE_KINDS),
    ),
    sa.Index("ix_consumed_request", consumed.c.request_id),
)

#: Indexes of schema version 1 that migration 3 replaces (their columns lead a new index).
_SUPERSEDED_INDEXES = ("ix_requests_status", "ix_audit_events_request_id")


def _m1_initial(conn: Connection) -> None:
    for table in (requests, votes, warrants, consumed, revocations, audit_events, audit_head, checkpoints):
        table.create(conn, checkfirst=True)


#: The inventory revision of an empty database inventory: the start of its hash chain.
INVENTORY_GENESIS = "sha256:" + hashlib.sha256(b"hitlgate inventory chain v1").hexdigest()


def _m2_inventory(conn: Connection) -> None:
    for table in (inventory_records, inventory_refs, inventory_meta):
        table.create(conn, checkfirst=True)
    if conn.execute(sa.select(inventory_meta.c.id)).first() is None:
        conn.execute(
            inventory_meta.insert().values(
                # Equivalent mutants (the id left to the key's default): the table is empty here, so its first
                # id is 1 either way; the explicit 1 says which row the readers look up.
                id=1,  # pragma: no mutate
                version=0, revision=INVENTORY_GENESIS, updated_at=utcnow(),
            )
        )


def _m3_query_indexes(conn: Connection) -> None:
    # Version 1 declared these two on the tables; a database created before
    # migration 3 has them, one created since never had them.
    for name in _SUPERSEDED_INDEXES:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
    for index in INDEXES:
        index.create(conn, checkfirst=True)


#: Indexes of the service's listing filters: an agent lists its own requests
#: (requester), an operator one target's, newest first, one page at a time.
SERVICE_INDEXES = (
    sa.Index("ix_requests_requester_created", requests.c.requester, requests.c.created_at, requests.c.id),
    sa.Index("ix_requests_target_created", requests.c.target, requests.c.created_at, requests.c.id),
)


def _m4_service(conn: Connection) -> None:
    for table in (idempotency_keys, api_keys):
        table.create(conn, checkfirst=True)
    for index in SERVICE_INDEXES:
        index.create(conn, checkfirst=True)


# -- notifications (migration 5; hitlgate/engine/notify) -------------------------
#
# The dispatcher's cursor: the last audit seq turned into notifications. One
# row (id 1), advanced in the write transaction that enqueues the
# notifications of the events it passed, so an event is enqueued exactly once
# whichever replica dispatches (every write transaction holds the store's
# write lock).
notification_cursor = sa.Table(
    "notification_cursor",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UtcTime, nullable=False),
)

# One row per (notification, channel): what to send where, and where its
# delivery stands (pending, delivered, dead). ``claimed_until`` is the lease a
# dispatcher takes on a row while it attempts it, so two dispatchers never
# send the same row at once; a dispatcher that died leaves a lease that lapses.
notification_outbox = sa.Table(
    "notification_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("audit_seq", sa.BigInteger, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UtcTime, nullable=False),
    sa.Column("next_attempt_at", UtcTime, nullable=False),
    sa.Column("claimed_until", UtcTime, nullable=True),
    sa.Column("delivered_at", UtcTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("message_id", "channel", name="uq_notification_outbox_message_channel"),
    sa.Index("ix_notification_outbox_due", "status", "next_attempt_at"),
)

# The delivery log: one row per attempt, kept after the outbox row is done.
notification_deliveries = sa.Table(
    "notification_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("outbox_id", sa.Integer, sa.ForeignKey("notification_outbox.id"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", UtcTime, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Index("ix_notification_deliveries_outbox", "outbox_id", "attempt"),
)


def _m5_notifications(conn: Connection) -> None:
    for table in (notification_cursor, notification_outbox, notification_deliveries):
        table.create(conn, checkfirst=True)
    if conn.execute(sa.select(notification_cursor.c.id)).first() is None:
        # A database that already has history starts notifying after it: the
        # events before this migration happened when nothing could be told.
        head = conn.execute(sa.select(audit_head.c.seq).where(audit_head.c.id == 1)).scalar()
        conn.execute(notification_cursor.insert().values(
            # Without the explicit id, SQLite numbers the row 1 all the same; PostgreSQL refuses the row (the
            # column has no default), which the PostgreSQL variant of the migration test shows. The mutation run
            # is SQLite-only, so those mutants are marked.
            id=1,  # pragma: no mutate
            seq=int(head or 0), updated_at=utcnow()))


def _m6_passkeys(conn: Connection) -> None:
    for table in (passkey_enrolments, passkey_credentials, webauthn_challenges):
        table.create(conn, checkfirst=True)


def _m7_reminders(conn: Connection) -> None:
    for table in (leases, request_nudges):
        table.create(conn, checkfirst=True)


def _m8_passkey_binding(conn: Connection) -> None:
    # Migration 6 creates the table from today's definition, which has the
    # column already; a database migrated to 6 before it existed gets it here.
    # Rows enrolled before have no binding and are refused: enrol them again.
    # SQL keywords and unquoted names are case-insensitive, and so are SQLite's table names: the mutants that
    # change only their case are equivalent in the (SQLite-only) mutation run.
    columns = sa.inspect(conn).get_columns("passkey_credentials")  # pragma: no mutate
    if "binding" not in {c["name"] for c in columns}:
        conn.execute(sa.text("ALTER TABLE passkey_credentials ADD COLUMN binding VARCHAR(64)"))  # pragma: no mutate


def _m9_console_logouts(conn: Connection) -> None:
    console_logouts.create(conn, checkfirst=True)


#: Applied in order; never edit or reorder a released entry, only append.
MIGRATIONS: tuple[tuple[int, str, Callable[[Connection], None]], ...] = (
    (1, "initial schema", _m1_initial),
    (2, "inventory records", _m2_inventory),
    (3, "indexes for listing, expiry, per-request events and verify", _m3_query_indexes),
    (4, "service: idempotency keys, API keys, listing filter indexes", _m4_service),
    (5, "notifications: cursor, outbox, delivery log", _m5_notifications),
    (6, "passkeys: enrolments, credentials, ceremony challenges", _m6_passkeys),
    (7, "reminders: leases and request nudges", _m7_reminders),
    (8, "passkeys: credential bindings", _m8_passkey_binding),
    (9, "console: sessions ended by logout", _m9_console_logouts),
)

LATEST_VERSION = MIGRATIONS[-1][0]

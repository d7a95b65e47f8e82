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

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from hitlgate.engine._time import format_time, parse_time

__all__ = ["format_time", "parse_time"]  # Re-exported: the store's text form of times.

class UtcTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime stored as fixed-width text."""

    impl = sa.String(32)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        """Aware datetime to stored text; a naive datetime is refused."""
        return None if value is None else format_time(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Stored text to an aware UTC datetime."""
        return None if value is None else parse_time(str(value))


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
    sa.Column("status", sa.String(32), nullable=False, index=True),
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
    sa.Column("request_id", sa.String(64), nullable=True, index=True),
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


def _m1_initial(conn: Connection) -> None:
    for table in (requests, votes, warrants, consumed, revocations, audit_events, audit_head, checkpoints):
        table.create(conn, checkfirst=True)


#: Applied in order; never edit or reorder a released entry, only append.
MIGRATIONS: tuple[tuple[int, str, Callable[[Connection], None]], ...] = (
    (1, "initial schema", _m1_initial),
)

LATEST_VERSION = MIGRATIONS[-1][0]

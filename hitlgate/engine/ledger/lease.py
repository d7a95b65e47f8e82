"""A named lease in the state store: one holder at a time, until it expires.

Periodic work that must run on one replica at a time (reminders,
escalations, expiry warnings, notification dispatch: :mod:`hitlgate.engine.tick`)
runs only while its replica holds the lease. The lease lives in the
``leases`` table (name, holder, expires_at), so every replica on one
database sees the same one, on SQLite and on PostgreSQL alike.

Each operation is one statement in its own short transaction, never inside
a caller's transaction and never behind the audit chain's lock:

1. :func:`acquire` inserts the row, or takes it over when it is free: held
   by the caller already (which renews it) or expired at ``now``. An
   ``INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE`` that changes one row
   or none; the row count says who won. Two replicas racing for a free lease
   cannot both win: the database serialises the two upserts on the primary
   key and the loser's ``WHERE`` sees the winner's row.
2. :func:`renew` extends the lease only while the caller still holds it and
   it has not expired (an ``UPDATE ... WHERE holder AND expires_at > now``):
   a holder that stalled past its expiry, whose lease another replica may
   since have taken, learns that it lost it instead of silently taking it
   back.
3. :func:`release` gives it up (a ``DELETE ... WHERE holder``), so a replica
   that shuts down cleanly hands over at once; a killed one's lease simply
   lapses at ``expires_at``.

Times come from the caller (``now``), so tests move them by hand. Holders
must keep their clocks roughly in step (NTP): a lease protects against two
replicas working at once only as well as their clocks agree, which is why
the work it guards is also made idempotent in the database (the unique key
of ``request_nudges``).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from hitlgate.engine._time import require_utc
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.store import Store, transaction
from hitlgate.errors import InputError, StorageError

__all__ = ["LeaseState", "acquire", "current", "default_holder", "release", "renew"]

#: The longest lease anyone may take: a holder must renew at least this often.
MAX_LEASE_SECONDS = 3600


@dataclass(frozen=True)
class LeaseState:
    """Who holds a lease, and until when."""

    name: str
    holder: str
    expires_at: datetime

    def held_at(self, now: datetime) -> bool:
        """Whether the lease is still in force at ``now``."""
        return now < self.expires_at


def default_holder() -> str:
    """A holder id unique to this process: host, process id and a random part (a restarted pid differs)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(4)}"


def _check(name: str, holder: str, ttl: timedelta | None = None) -> None:
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        raise InputError("a lease name must be 1 to 100 characters")
    if not isinstance(holder, str) or not 0 < len(holder) <= 200:
        raise InputError("a lease holder must be 1 to 200 characters")
    if ttl is not None and not timedelta(seconds=1) <= ttl <= timedelta(seconds=MAX_LEASE_SECONDS):
        raise InputError(f"a lease lasts 1 to {MAX_LEASE_SECONDS} seconds, not {ttl.total_seconds():g}")


def _run(store: Store, statement: sa.Executable) -> int:
    """Execute one statement in its own write transaction; return the rows it changed (by its RETURNING rows).

    Counted from ``RETURNING`` rather than the row count, which psycopg
    reports as -1 for an upsert through SQLAlchemy.
    """
    try:
        with store.engine.connect() as conn:
            # BEGIN IMMEDIATE on SQLite: writers queue instead of failing.
            with transaction(conn, write=True):
                return len(conn.execute(statement).all())
    except SQLAlchemyError as exc:
        raise StorageError(f"state store {store.url_for_people}: the lease could not be updated: "
                           f"{type(exc).__name__}") from exc


def acquire(store: Store, name: str, holder: str, *, ttl: timedelta, now: datetime) -> bool:
    """Take (or renew) lease ``name`` for ``holder`` until ``now + ttl``; return whether ``holder`` holds it now.

    Succeeds when nobody holds it, when ``holder`` already does, or when the
    current holder's lease expired at or before ``now``.
    """
    _check(name, holder, ttl)
    at = require_utc(now, "now")
    until = at + ttl
    lt = t.leases
    dialect = postgresql if store.dialect == "postgresql" else sqlite
    ins = dialect.insert(lt).values(name=name, holder=holder, expires_at=until)
    stmt = ins.on_conflict_do_update(
        index_elements=[lt.c.name],
        set_={"holder": ins.excluded.holder, "expires_at": ins.excluded.expires_at},
        # Taken over only when free: ours already, or expired. UtcTime binds
        # ``at`` as the same fixed-width text the column holds.
        where=sa.or_(lt.c.holder == holder, lt.c.expires_at <= sa.bindparam("at", at, type_=t.UtcTime())),
    ).returning(lt.c.name)
    return _run(store, stmt) == 1


def renew(store: Store, name: str, holder: str, *, ttl: timedelta, now: datetime) -> bool:
    """Extend ``holder``'s unexpired lease to ``now + ttl``; False when it is not (or no longer) theirs."""
    _check(name, holder, ttl)
    at = require_utc(now, "now")
    lt = t.leases
    stmt = (
        lt.update()
        .where(lt.c.name == name, lt.c.holder == holder, lt.c.expires_at > sa.bindparam("at", at, type_=t.UtcTime()))
        .values(expires_at=at + ttl)
        .returning(lt.c.name)
    )
    return _run(store, stmt) == 1


def release(store: Store, name: str, holder: str) -> bool:
    """Give up ``holder``'s lease (expired or not); return whether there was one to give up."""
    _check(name, holder)
    lt = t.leases
    return _run(store, lt.delete().where(lt.c.name == name, lt.c.holder == holder).returning(lt.c.name)) == 1


def current(store: Store, name: str) -> LeaseState | None:
    """The lease row of ``name`` (possibly expired), or None when nobody ever took it or it was released."""
    with store.read() as tx:
        row = tx.conn.execute(sa.select(t.leases).where(t.leases.c.name == name)).mappings().first()
    return None if row is None else LeaseState(row["name"], row["holder"], row["expires_at"])

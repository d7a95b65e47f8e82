"""The state store: requests, votes, warrants, consumed warrant ids, audit.

SQLAlchemy Core 2.x; the same code runs on SQLite (the default, one
machine) and PostgreSQL (psycopg 3, ``postgresql+psycopg://``, many
replicas). :meth:`Store.open` creates or migrates the schema (see
:mod:`hitlgate.engine.ledger._store_schema`). The statements an approval
flow sends are constants, compiled once per dialect and sent on the
driver's cursor (:mod:`hitlgate.engine.ledger._fastsql`); the rest go
through ``Connection.execute``.

Transactions. Every state change happens inside one :meth:`Store.write`
transaction together with the audit events describing it: either both are
written or neither is. Write transactions are serialised:

* on SQLite with ``BEGIN IMMEDIATE`` (the write lock is taken up front, so
  two processes queue on ``busy_timeout`` instead of one failing with
  "database is locked" when it upgrades a read lock), in WAL mode so that
  readers never block;
* on PostgreSQL by locking the single ``audit_head`` row first
  (``SELECT ... FOR UPDATE``), which the hash chain needs anyway: each event
  names the hash of the one before it.

On PostgreSQL a write that names its request (:class:`Reads`: the vote, the
warrant, the guard's consumption, the outcome) has the request's row, votes,
warrant and events read right after the lock, in the same round trip (a
psycopg pipeline), and its first calls for them answered from those rows.

A write's audit events and checkpoints are held back and written as it
ends: on PostgreSQL in one statement with the move of ``audit_head`` (a
data-modifying ``WITH``), on SQLite one INSERT per table. Any statement of
the transaction that uses the connection before then writes them first
(:attr:`Transaction.conn`), so the transaction never reads past its own
events.

Uniqueness that security depends on (one vote per person and request, one
warrant per request, one consumption per warrant id) is also enforced by
database constraints, so a bug above cannot break it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import json
import math
import os
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql as sa_postgresql
from sqlalchemy.dialects import sqlite as sa_sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hitlgate.engine._files import make_private_dirs
from hitlgate.engine._safeparse import shorten
from hitlgate.engine._time import require_utc as _require_utc
from hitlgate.engine._time import utcnow
from hitlgate.engine.approve import lifecycle
from hitlgate.engine.decide.decision import Decision
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger._fastsql import Fetched, Prepared, Rows, execute_together
from hitlgate.engine.ledger.audit import GENESIS_HASH, AuditEvent, Checkpoint, _refuse_constant, event_after
from hitlgate.engine.ledger.audit import parse_time as parse_audit_time
from hitlgate.errors import (
    ApprovalError,
    AuditChainError,
    ConfigError,
    InputError,
    InvalidWarrant,
    NotFoundError,
    PolicyError,
    StorageError,
    ValidationError,
)

#: How long a SQLite writer waits for the lock before giving up (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000

# The statements of the approval path, built once. SQLAlchemy memoizes a
# statement object's cache key and finds its compiled form in the engine's
# compiled cache, so executing one of these skips building the expression
# and generating its key, which otherwise cost about half of the path's CPU.
# Values are passed as parameters at execution.
_TIME = t.UtcTime()
_REQUEST_TIMES = ("created_at", "expires_at", "updated_at")
#: A request's columns, its times as their stored text: the one-request reads (get_request, peek_request)
#: parse them (_stored_times), so a corrupted time is named with its request.
_REQUEST_COLUMNS = tuple(sa.type_coerce(c, sa.String).label(c.name) if c.name in _REQUEST_TIMES else c
                         for c in t.requests.c)
_REQUEST_BY_ID = Prepared(sa.select(*_REQUEST_COLUMNS).where(t.requests.c.id == sa.bindparam("rid")))
#: A vote's columns as stored, its times as their text: :func:`_stored_vote` parses them, so a corrupted
#: time is named with its request like any other corrupted part of a vote.
_VOTE_COLUMNS = (
    t.votes.c.approver, t.votes.c.verdict, sa.type_coerce(t.votes.c.signed_at, sa.String).label("signed_at"),
    sa.type_coerce(t.votes.c.recorded_at, sa.String).label("recorded_at"), t.votes.c.statement,
)
_VOTES_OF = Prepared(sa.select(*_VOTE_COLUMNS).where(t.votes.c.request_id == sa.bindparam("rid"))
                     .order_by(t.votes.c.id))
_INSERT_REQUEST = Prepared(t.requests.insert())
_INSERT_VOTE = Prepared(t.votes.insert())
_INSERT_WARRANT = Prepared(t.warrants.insert())
_MOVE_REQUEST = Prepared(
    t.requests.update()
    .where(t.requests.c.id == sa.bindparam("rid"), t.requests.c.status == sa.bindparam("from_status"))
    .values(status=sa.bindparam("to_status"), updated_at=sa.bindparam("now", type_=_TIME),
            status_reason=sa.bindparam("reason"), expires_at=sa.bindparam("expires_at", type_=_TIME))
)
_WARRANT_OF = Prepared(
    sa.select(t.warrants, t.consumed.c.consumed_at)
    .select_from(t.warrants.outerjoin(t.consumed, t.consumed.c.jti == t.warrants.c.jti))
    .where(t.warrants.c.request_id == sa.bindparam("rid"))
)
#: A request with its warrant (if any) and that warrant's consumption, in one statement (Store.peek_request).
#: The warrant's columns are labelled (requests and warrants both have ``expires_at``), and every time is
#: read as its stored text: peek_request parses it, so a corrupted time is named with its request.
_WARRANT_LABELS = ("jti", "request_id", "token", "kid", "issued_at", "expires_at")
_WARRANT_TIMES = ("issued_at", "expires_at", "consumed_at")
_PEEK_REQUEST = Prepared(
    sa.select(
        *_REQUEST_COLUMNS,
        *(sa.type_coerce(t.warrants.c[name], sa.String).label(f"warrant_{name}") if name in _WARRANT_TIMES
          else t.warrants.c[name].label(f"warrant_{name}") for name in _WARRANT_LABELS),
        sa.type_coerce(t.consumed.c.consumed_at, sa.String).label("warrant_consumed_at"),
    )
    .select_from(t.requests.outerjoin(t.warrants, t.warrants.c.request_id == t.requests.c.id)
                 .outerjoin(t.consumed, t.consumed.c.jti == t.warrants.c.jti))
    .where(t.requests.c.id == sa.bindparam("rid"))
)
#: The columns of an audit event and of a checkpoint, each time read as its stored text: _event_from_row and
#: _checkpoint_from_row parse it, so a time edited into another spelling is named with its seq.
_EVENT_COLUMNS = tuple(sa.type_coerce(c, sa.String).label(c.name) if c.name == "at" else c for c in t.audit_events.c)
_CHECKPOINT_COLUMNS = tuple(sa.type_coerce(c, sa.String).label(c.name) if c.name == "at" else c
                            for c in t.checkpoints.c)
_LOCK_HEAD = Prepared(sa.select(t.audit_head.c.seq, t.audit_head.c.hash).where(t.audit_head.c.id == 1)
                      .with_for_update())
#: :data:`_LOCK_HEAD` and, in the same statement, the stored hash of event ``seq`` (the one the anchor's newest
#: checkpoint names, which the write will compare: :attr:`Store.anchored_seq`; SQLite only: on PostgreSQL
#: :data:`_EVENT_HASH` follows the lock in the same round trip, see Store.write).
_LOCK_HEAD_AND_HASH = Prepared(
    sa.select(t.audit_head.c.seq, t.audit_head.c.hash,
              sa.select(t.audit_events.c.hash).where(t.audit_events.c.seq == sa.bindparam("seq"))
              .scalar_subquery())
    .where(t.audit_head.c.id == 1).with_for_update())
_HEAD_EVENT = sa.select(*_EVENT_COLUMNS).order_by(t.audit_events.c.seq.desc()).limit(1)
_EVENT_HASH = Prepared(sa.select(t.audit_events.c.hash).where(t.audit_events.c.seq == sa.bindparam("seq")))
_MOVE_HEAD = Prepared(t.audit_head.update().where(t.audit_head.c.id == 1).values(
    seq=sa.bindparam("new_seq"), hash=sa.bindparam("new_hash")))


@functools.lru_cache(maxsize=64)
def _events_of(kinds: tuple[str, ...]) -> Prepared:
    """One request's events of ``kinds`` (a few constant tuples in the engine's code), in chain order."""
    return Prepared(sa.select(*_EVENT_COLUMNS)
                    .where(t.audit_events.c.request_id == sa.bindparam("rid"), t.audit_events.c.kind.in_(
                        [sa.bindparam(f"kind_{i}", kind) for i, kind in enumerate(kinds)]))
                    .order_by(t.audit_events.c.seq))


_ANY_CHECKPOINT = sa.select(t.checkpoints.c.seq).limit(1)


def _listing(by_status: bool, after: bool) -> sa.Select[Any]:
    """A listing page: newest first, one index range scan on ``(status,) created_at, id``."""
    # Called only at import, to build _LIST_PAGE; mutmut switches a mutant on after import, so no mutant of
    # this body could ever run (each would "survive"). tests/workflow/test_request_listing_edges.py and the
    # service's listing tests hold what it builds.
    # pragma: no mutate block
    r = t.requests.c
    q = sa.select(t.requests).order_by(r.created_at.desc(), r.id.desc()).limit(sa.bindparam("limit"))
    if by_status:
        q = q.where(r.status == sa.bindparam("status"))
    if after:
        q = q.where(sa.tuple_(r.created_at, r.id) < sa.tuple_(
            sa.bindparam("at", type_=_TIME), sa.bindparam("after_id", type_=sa.String)))
    return q


def _team_needle(team: str) -> str:
    """A team's name as json.dumps writes it into a stored decision, escaped for LIKE (escape character ``\\``).

    Not mutated: see :func:`_filtered` (one line, because mutmut reads a statement's pragma on its first line only).
    """
    return json.dumps(team).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")  # pragma: no mutate


def _filtered(query: sa.Select[Any], filters: ListFilters) -> sa.Select[Any]:
    """A listing page narrowed by the service's filters (requester and target have their own indexes)."""
    r = t.requests.c
    if filters.tier is not None:
        query = query.where(r.tier == filters.tier)
    if filters.target is not None:
        query = query.where(r.target == filters.target)
    if filters.requester is not None:
        query = query.where(r.requester == filters.requester)
    if filters.since is not None:
        query = query.where(r.created_at >= sa.literal(filters.since, _TIME))
    if filters.team is not None:
        # Teams live inside the stored decision (its quorum slots), not in a column: the database
        # narrows the page by the team's quoted name in the decision text, in the same index walk;
        # the caller keeps only requests whose quorum really names the team (ListFilters.team).
        # The needle is the name as json.dumps wrote it into the decision (quotes and escapes included).
        # Equivalent mutants (not mutated): a team id never holds a backslash, "%" or "_" (the
        # inventory's id pattern), so for a real team the escapes change nothing, and for a filter
        # holding one (test_team_search_window.py) escaping it differently, or not declaring the escape
        # character, still matches no request the caller keeps: every such mutant gives the same page.
        needle = _team_needle(filters.team)
        query = query.where(r.decision.like(f"%{needle}%", escape="\\"))  # pragma: no mutate
    return query


#: Listing pages by (status filter given, cursor given), built once (see above).
_LIST_PAGE = {(by_status, after): _listing(by_status, after) for by_status in (False, True) for after in (False, True)}
#: The ids of the next ``within`` requests of a listing (the window a bounded search reads), by the same keys.
_LIST_WINDOW = {
    key: query.with_only_columns(t.requests.c.id).limit(sa.bindparam("within")) for key, query in _LIST_PAGE.items()
}
#: The ``(created_at, id)`` of the ``nth`` request of a listing (``nth`` bound as ``skip`` = nth - 1), by the same keys.
_LIST_MARK = {
    key: query.with_only_columns(t.requests.c.created_at, t.requests.c.id).limit(1).offset(sa.bindparam("skip"))
    for key, query in _LIST_PAGE.items()
}


def _page_rows(dialect: str, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """``column`` is one of a page's request ids (bound as ``ids``).

    On PostgreSQL one array parameter (``= ANY(%s)``): an expanding ``IN``
    renders and sends a hundred parameters per page, which cost more than the
    index lookups they feed. SQLite has no arrays and binds an ``IN`` list cheaply.
    """
    # Called only at import (_PAGE_VOTES, _PAGE_WARRANTS): no mutant of it could run (see _listing).
    # pragma: no mutate block
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam("ids", type_=sa_postgresql.ARRAY(sa.String)))
    return column.in_(sa.bindparam("ids", expanding=True))


_v = t.votes.c
_PAGE_VOTES = {
    name: sa.select(_v.request_id, *_VOTE_COLUMNS).where(_page_rows(name, _v.request_id)).order_by(_v.id)
    for name in ("postgresql", "sqlite")
}
#: PostgreSQL: each listed request's votes, in the order recorded, as one JSON array in the page's own
#: statement ([approver, verdict, signed_at, recorded_at, statement text] each), so the page and its votes
#: are one snapshot and one round trip. SQLite reads them with a second statement in the same transaction.
_ROW_VOTES_PG = (
    sa.select(sa.func.json_agg(sa_postgresql.aggregate_order_by(
        sa.func.json_build_array(_v.approver, _v.verdict, _v.signed_at, _v.recorded_at, _v.statement), _v.id)))
    .where(_v.request_id == t.requests.c.id).scalar_subquery().label("page_votes")
)
#: PostgreSQL: a request with its votes in one statement (:data:`_REQUEST_BY_ID` then :data:`_VOTES_OF` elsewhere).
_REQUEST_WITH_VOTES_PG = Prepared(sa.select(*_REQUEST_COLUMNS, _ROW_VOTES_PG)
                                  .where(t.requests.c.id == sa.bindparam("rid")))
_PAGE_WARRANTS = {
    name: sa.select(t.warrants, t.consumed.c.consumed_at)
    .select_from(t.warrants.outerjoin(t.consumed, t.consumed.c.jti == t.warrants.c.jti))
    .where(_page_rows(name, t.warrants.c.request_id))
    for name in ("postgresql", "sqlite")
}
# INSERT ... ON CONFLICT DO NOTHING, in each supported database's dialect:
# a duplicate key is reported as "no row inserted" instead of an error, so
# neither needs a savepoint around it (two more statements each) to keep the
# transaction usable. The unique keys still decide; the store reads the row
# count.
# preserve_rowcount: SQLAlchemy otherwise reports -1 for an INSERT on psycopg.
#: The SQLAlchemy dialect module (with its ``insert`` that takes ON CONFLICT) of each supported database.
_DIALECTS = {"postgresql": sa_postgresql, "sqlite": sa_sqlite}
_CONSUME = {
    name: Prepared(dialect.insert(t.consumed).on_conflict_do_nothing(index_elements=["jti"])
                   .execution_options(preserve_rowcount=True))
    for name, dialect in _DIALECTS.items()
}

#: At most this many held-back audit rows of one table go in one INSERT (one statement cached per count).
_HELD_ROWS = 8


def _held_insert(dialect: str, table: sa.Table, prefix: str, n: int) -> Any:
    """``INSERT INTO table VALUES (row 0), ..., (row n-1)``; row i's value of column c is the bind ``{prefix}{i}_{c}``.

    A checkpoint already stored under its seq is left alone (see :meth:`Transaction.insert_checkpoint`).
    """
    rows = [{c.name: sa.bindparam(f"{prefix}{i}_{c.name}", type_=c.type) for c in table.c} for i in range(n)]
    stmt = _DIALECTS[dialect].insert(table).values(rows)
    return stmt.on_conflict_do_nothing(index_elements=["seq"]) if table is t.checkpoints else stmt


# Not bounded by size: at most 9 x 9 x 2 shapes per dialect (counts up to _HELD_ROWS).
@functools.cache
def _held_write(dialect: str, events: int, checkpoints: int, move_head: bool) -> Prepared:
    """One statement writing ``events`` audit events and ``checkpoints`` checkpoints (and moving the head).

    PostgreSQL only when it holds more than one part: its data-modifying
    ``WITH`` runs the inserts and the head's update as one statement. On
    SQLite each part is a statement of its own (see :func:`_execute_held`).
    """
    parts = []
    if events:
        parts.append(_held_insert(dialect, t.audit_events, "e", events))
    if checkpoints:
        parts.append(_held_insert(dialect, t.checkpoints, "c", checkpoints))
    if move_head:
        parts.append(_MOVE_HEAD.statement)
    if len(parts) == 1:
        return Prepared(parts[0])
    if dialect != "postgresql":
        raise StorageError(f"internal error: a combined audit write on {dialect}")
    *ctes, main = parts
    return Prepared(main.add_cte(*(part.cte(f"held_{i}") for i, part in enumerate(ctes))))


@dataclass(frozen=True)
class Vote:
    """One person's approval or rejection of one request (as stored)."""

    approver: str
    verdict: str
    signed_at: datetime
    recorded_at: datetime
    statement: Mapping[str, Any] = field(repr=False)

    def __post_init__(self) -> None:
        if self.verdict not in ("approve", "reject"):
            raise ValueError(f"unknown verdict {self.verdict!r}")
        _require_utc(self.signed_at, "signed_at")
        _require_utc(self.recorded_at, "recorded_at")

    def to_dict(self) -> dict[str, Any]:
        """JSON form, including the signed statement."""
        return {
            "approver": self.approver,
            "verdict": self.verdict,
            "signed_at": t.format_time(self.signed_at),
            "recorded_at": t.format_time(self.recorded_at),
            "statement": dict(self.statement),
        }


@dataclass(frozen=True)
class Request:
    """A stored request: the proposal, its decision, and where it stands."""

    id: str
    status: str
    tier: str
    requester: str
    action_digest: str
    proposal: Mapping[str, Any] = field(repr=False)
    decision: Decision = field(repr=False)
    policy_revision: str
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    status_reason: str = ""
    votes: tuple[Vote, ...] = ()
    #: False when the request was read without its votes (``get_request(..., votes=False)``):
    #: ``votes`` is then empty whatever is stored, and what counts votes refuses it.
    votes_read: bool = field(default=True, compare=False)

    def __post_init__(self) -> None:
        if self.status not in lifecycle.STATES:
            raise StorageError(f"request {self.id} has unknown status {self.status!r}")
        for name in ("created_at", "expires_at", "updated_at"):
            _require_utc(getattr(self, name), name)

    @property
    def action(self) -> Mapping[str, Any]:
        """The stored action (type, target, parameters)."""
        action: Mapping[str, Any] = self.proposal["action"]
        return action

    def _require_votes(self) -> None:
        if not self.votes_read:
            raise StorageError(f"internal error: request {self.id} was read without its votes, which are needed here")

    @property
    def approvals(self) -> tuple[Vote, ...]:
        """The approve votes, in the order they were recorded."""
        self._require_votes()
        return tuple(v for v in self.votes if v.verdict == "approve")

    @property
    def rejections(self) -> tuple[Vote, ...]:
        """The reject votes, in the order they were recorded."""
        self._require_votes()
        return tuple(v for v in self.votes if v.verdict == "reject")

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the CLI and the API."""
        self._require_votes()
        return {
            "id": self.id,
            "status": self.status,
            "status_reason": self.status_reason,
            "tier": self.tier,
            "requester": self.requester,
            "action": dict(self.action),
            "action_digest": self.action_digest,
            "policy_revision": self.policy_revision,
            "created_at": t.format_time(self.created_at),
            "expires_at": t.format_time(self.expires_at),
            "updated_at": t.format_time(self.updated_at),
            "decision": self.decision.to_dict(),
            "proposal": dict(self.proposal),
            "votes": [v.to_dict() for v in self.votes],
        }


@dataclass(frozen=True)
class WarrantRecord:
    """A warrant the engine issued, as stored."""

    jti: str
    request_id: str
    token: str = field(repr=False)
    kid: str
    issued_at: datetime
    expires_at: datetime
    consumed_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_utc(self.issued_at, "issued_at")
        _require_utc(self.expires_at, "expires_at")
        if self.consumed_at is not None:
            _require_utc(self.consumed_at, "consumed_at")


#: The most requests one listing call returns (pages beyond it continue with a cursor).
MAX_LIST_LIMIT = 100_000


@dataclass(frozen=True)
class ListCursor:
    """Where a listing page ended: the last request's ``(created_at, id)`` (see :meth:`Transaction.list_requests`)."""

    created_at: datetime
    request_id: str

    def __post_init__(self) -> None:
        _require_utc(self.created_at, "created_at")

    @classmethod
    def after(cls, req: Request) -> ListCursor:
        """The cursor that continues a listing after ``req``."""
        return cls(req.created_at, req.id)

    def encode(self) -> str:
        """The cursor as one opaque word for the CLI (``--cursor``)."""
        return f"{t.format_time(self.created_at)}~{self.request_id}"

    @classmethod
    def decode(cls, text: str) -> ListCursor:
        """Parse :meth:`encode` output; :class:`InputError` naming ``--cursor`` otherwise."""
        at, sep, rid = text.partition("~")
        try:
            if not sep or not rid or len(text) > 300:
                raise ValueError("not a cursor")  # pragma: no mutate - replaced by the InputError below.
            return cls(t.parse_time(at), rid)
        except (ValueError, TypeError):
            raise InputError("--cursor: not a cursor printed by `hitlgate requests` (TIME~ID)") from None


@dataclass(frozen=True)
class ListFilters:
    """What a listing keeps besides its status: tier, target, requester, created at or after ``since``.

    ``team`` keeps requests whose stored decision mentions the team's name as a JSON string: a
    superset of those whose quorum names the team (a workload of the same name would match too),
    which the caller narrows (see :func:`hitlgate.service.console.pending_page`).
    """

    tier: str | None = None
    target: str | None = None
    requester: str | None = None
    since: datetime | None = None
    team: str | None = None

    def __post_init__(self) -> None:
        if self.since is not None:
            _require_utc(self.since, "since")


@dataclass(frozen=True)
class EventFacts:
    """What holding the tables against the chain needs of one event (no hash, no time)."""

    seq: int
    kind: str
    payload: Mapping[str, Any]


@dataclass
class RequestRows:
    """One request's table rows and chain events, as ``audit verify`` holds them against each other."""

    request_id: str
    #: (status, tier, action_digest), or None when the request row is missing.
    request: tuple[str, str, str] | None = None
    #: The request's events in chain order.
    events: list[EventFacts] = field(default_factory=list)
    #: (approver, verdict, statement JSON text), in the order recorded.
    votes: list[tuple[str, str, str]] = field(default_factory=list)
    warrant_jti: str | None = None
    consumed: set[str] = field(default_factory=set)


#: One read of a request: what its answer is kept under, the statement, its parameters (see Transaction._read).
_Read = tuple[tuple[Any, ...], Prepared, dict[str, Any]]


def _request_read(request_id: str, *, with_votes: bool) -> _Read:
    """The request's row; ``with_votes``: its votes in the same statement (PostgreSQL's)."""
    return (("request", request_id, with_votes), _REQUEST_WITH_VOTES_PG if with_votes else _REQUEST_BY_ID,
            {"rid": request_id})


def _warrant_read(request_id: str) -> _Read:
    """The request's warrant, with its consumption."""
    return ("warrant", request_id), _WARRANT_OF, {"rid": request_id}


def _events_read(request_id: str, kinds: tuple[str, ...]) -> _Read:
    """The request's events of ``kinds``, in chain order."""
    return ("events", request_id, kinds), _events_of(kinds), {"rid": request_id}


@dataclass(frozen=True)
class Reads:
    """What a write transaction will read first of one request: see :meth:`Store.write` (PostgreSQL only)."""

    request_id: str
    #: The request's votes too (:meth:`Transaction.get_request` with ``votes=True``).
    votes: bool = True
    #: Its warrant (:meth:`Transaction.warrant_for`).
    warrant: bool = False
    #: Its events of these kinds (:meth:`Transaction.request_events`); none when empty.
    events: tuple[str, ...] = ()

    def statements(self) -> list[_Read]:
        """Each read, as the :class:`Transaction` method sends it on PostgreSQL (votes with the request's row)."""
        out = [_request_read(self.request_id, with_votes=self.votes)]
        if self.warrant:
            out.append(_warrant_read(self.request_id))
        if self.events:
            out.append(_events_read(self.request_id, self.events))
        return out


def _execute_held(conn: Connection, dialect: str, events: list[dict[str, Any]],
                  checkpoints: list[dict[str, Any]], *, move_head: Mapping[str, Any] | None) -> None:
    """Write ``events`` and ``checkpoints`` (at most :data:`_HELD_ROWS` each) and move the head to ``move_head``.

    One statement on PostgreSQL; on SQLite one per table (and one for the head).
    """
    event_params = {f"e{i}_{k}": v for i, row in enumerate(events) for k, v in row.items()}
    checkpoint_params = {f"c{i}_{k}": v for i, row in enumerate(checkpoints) for k, v in row.items()}
    if dialect == "postgresql":
        if events or checkpoints or move_head is not None:
            _held_write(dialect, len(events), len(checkpoints), move_head is not None).execute(
                conn, {**event_params, **checkpoint_params, **(move_head or {})})
        return
    if events:
        _held_write(dialect, len(events), 0, False).execute(conn, event_params)
    if checkpoints:
        _held_write(dialect, 0, len(checkpoints), False).execute(conn, checkpoint_params)
    if move_head is not None:
        _MOVE_HEAD.execute(conn, dict(move_head))


class Transaction:
    """One open transaction on the store. Obtain it from :meth:`Store.write` or :meth:`Store.read`."""

    def __init__(self, conn: Connection, *, writable: bool, head: tuple[int, str] | None = None,
                 event_hash: tuple[int, str | None] | None = None) -> None:
        self._conn = conn
        self.writable = writable
        # Audit rows appended but not yet written (see append): events and checkpoints, as bind values.
        self._held_events: list[dict[str, Any]] = []
        self._held_checkpoints: list[dict[str, Any]] = []
        # Set when writing the held rows failed: they are gone from the lists and the chain head
        # (_head) is past them, so this transaction must never commit (see _write_held).
        self._failed: StorageError | None = None
        # (seq, stored hash or None) of one event, read with the chain head under this transaction's lock.
        self._event_hash = event_hash
        self._after_commit: list[Callable[[], None]] = []
        # The chain head (seq, hash) this write transaction builds on: read
        # from the audit_head row it locked first, then moved by each append.
        self._head = head
        # Whether the audit_head row lags behind this transaction's events;
        # it is moved once, before the commit (see Store.write).
        self._head_moved = False
        #: Checks a caller has made once in this write transaction, under its
        #: lock, and need not repeat for each event (see ``AuditLog.require_anchored_head``).
        self.checked: set[str] = set()
        # Rows read with the chain head (Store.write's reads), by what they answer: each serves the first call
        # that asks for it, and all are dropped as this transaction uses its connection or appends anything
        # (see _read), so none is ever older than the transaction's own changes.
        self._prefetched: dict[tuple[Any, ...], Fetched] = {}

    @property
    def conn(self) -> Connection:
        """The transaction's connection, with every audit row appended so far written first.

        :meth:`append` and :meth:`insert_checkpoint` hold their rows back
        and the transaction writes them as it ends, with the chain head
        (one statement on PostgreSQL). Anything that asks for the
        connection, to read or to write, is handed it only once the held
        rows are in its tables, so no statement of this transaction can
        miss them.
        """
        if self._failed is not None:
            raise self._failed
        self._prefetched.clear()
        if self._held_events or self._held_checkpoints:
            self._write_held(final=False)
        return self._conn

    def _read(self, read: _Read) -> Rows:
        """The rows of ``read``: those :meth:`Store.write` read with the chain head under its key, else queried now.

        A prefetched answer is the same statement's, sent after the head was
        locked (so no other write has committed since), and it is used only
        while this transaction has sent nothing else and appended nothing:
        :attr:`conn`, :meth:`transition` (which writes through the connection
        without asking :attr:`conn`), :meth:`append` and :meth:`insert_checkpoint`
        drop them all.
        """
        key, statement, params = read
        fetched = self._prefetched.pop(key, None)
        # Decoded here, by the call that uses them, so a value that does not decode raises where it did when
        # the call queried it itself.
        return fetched.rows() if fetched is not None else statement.execute(self.conn, params)

    def _write_held(self, *, final: bool) -> None:
        """Write the held audit rows; ``final``: and move the chain head (the transaction is ending).

        An error here ends the transaction: it is raised as a
        :class:`StorageError`, which no caller takes for a refusal of its
        own statement (an ``IntegrityError`` of a vote, say).
        """
        events, checkpoints = self._held_events, self._held_checkpoints
        self._held_events, self._held_checkpoints = [], []
        head = ({"new_seq": self._head[0], "new_hash": self._head[1]}
                if final and self._head_moved and self._head is not None else None)
        conn = self._conn
        dialect = conn.dialect.name
        try:
            while len(events) > _HELD_ROWS:
                _execute_held(conn, dialect, events[:_HELD_ROWS], [], move_head=None)
                events = events[_HELD_ROWS:]
            while len(checkpoints) > _HELD_ROWS:
                _execute_held(conn, dialect, [], checkpoints[:_HELD_ROWS], move_head=None)
                checkpoints = checkpoints[_HELD_ROWS:]
            _execute_held(conn, dialect, events, checkpoints, move_head=head)
        except SQLAlchemyError as exc:
            # The held rows are dropped and the head is past them: a body that caught this and went on
            # must not commit (on SQLite a failed statement leaves the transaction open), so every later
            # use of the connection, and the commit (_store_head), raises it again.
            self._failed = StorageError(f"the audit chain could not be written: {_db_message(exc)}")
            raise self._failed from exc
        except BaseException:
            # Anything else (an interrupt, an internal error) leaves the rows as unwritten.
            self._failed = StorageError("the audit chain could not be written: an earlier write of it failed")
            raise

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this write transaction has committed (never after a rollback).

        Callbacks run in order, outside the transaction; an exception from
        one propagates to the caller of :meth:`Store.write` (the commit
        stands) and the callbacks after it do not run.
        """
        self._require_writable()
        self._after_commit.append(callback)

    def _require_writable(self) -> None:
        if not self.writable:
            raise StorageError("internal error: a state change was attempted in a read transaction")

    # -- requests ---------------------------------------------------------

    def insert_request(
        self,
        *,
        request_id: str,
        status: str,
        proposal: Mapping[str, Any],
        action_digest: str,
        decision: Decision,
        created_at: datetime,
        expires_at: datetime,
        status_reason: str,
    ) -> Request:
        """Store a new request (its status must be a legal initial state); return it as stored.

        The returned request is built from the stored values (the proposal
        and decision parsed back from the text written), so it equals what
        :meth:`get_request` would read, without reading it.
        """
        self._require_writable()
        if status != lifecycle.initial_state(decision.tier):
            raise StorageError(f"a new {decision.tier} request cannot start as {status}")
        action = proposal["action"]
        row: dict[str, Any] = {
            "id": request_id,
            "status": status,
            "tier": decision.tier,
            "requester": str(proposal["requester"]["id"]),
            "action_type": str(action["type"]),
            "target": str(action["target"]),
            "action_digest": action_digest,
            # Sorted for people reading the table; both are parsed back (the action's digest is computed from
            # its canonical form), so the key order cannot change what is read: equivalent if mutated.
            "proposal": json.dumps(proposal, sort_keys=True),  # pragma: no mutate
            "decision": json.dumps(decision.to_dict(), sort_keys=True),  # pragma: no mutate
            "policy_revision": decision.policy_revision,
            "created_at": created_at,
            "expires_at": expires_at,
            "updated_at": created_at,
            "status_reason": status_reason,
        }
        _INSERT_REQUEST.execute(self.conn, row)
        # Times as read back: UTC (the stored text keeps microseconds, so nothing else changes).
        for name in ("created_at", "expires_at", "updated_at"):
            # Only converts: the insert above already refused a naive time (the column type does), so the
            # name in the refusal is never shown: equivalent if mutated.
            row[name] = _require_utc(row[name], name)  # pragma: no mutate
        return self._request_from_row(row, ())

    def get_request(self, request_id: str, *, votes: bool = True) -> Request:
        """Load a request with its votes; raises :class:`NotFoundError` (code ``not_found``) if there is none.

        ``votes=False`` skips the votes query, for callers that need the
        request's status, proposal, decision and digest but count no vote (the
        guard, the warrant path's pre-check, outcome recording); the request
        then says so (``votes_read``) and refuses to list approvals.
        """
        # PostgreSQL only (outside the mutation run; its tests run it): the votes come in the same statement,
        # one round trip instead of two.
        together = votes and self._conn.dialect.name == "postgresql"  # pragma: no mutate
        found = self._read(_request_read(request_id, with_votes=together)).mappings().first()  # pragma: no mutate
        if found is None:
            raise NotFoundError(f"no request with id {shorten(request_id, 60)!r}")
        row = _stored_times(found, _REQUEST_TIMES)
        if not votes:
            return self._request_from_row(row, (), votes_read=False)
        if together:  # pragma: no mutate
            return self._request_from_row(row, _votes_from_json(found))  # pragma: no mutate
        return self._request_from_row(row, self.votes(request_id))

    def list_requests(
        # The default page size is a convenience: any value from 1 to MAX_LIST_LIMIT is as correct.
        self, status: str | None = None, limit: int = 1000, *, before: ListCursor | None = None,  # pragma: no mutate
        filters: ListFilters | None = None, within: int | None = None,
    ) -> list[Request]:
        """Requests, newest first, optionally only those in ``status`` (and matching ``filters``); at most ``limit``.

        ``before`` continues a listing after the last request of the previous
        page (keyset pagination on ``(created_at, id)``): each page is one
        index range scan of ``limit`` rows, however deep, where an OFFSET
        would read and drop every row before it.

        ``within`` bounds the search: only the next ``within`` requests of the
        listing (by status and ``before``) are matched against ``filters``, so
        a filter that matches rarely reads that many index entries, not every
        request; :meth:`listing_mark` says where such a window ended.
        """
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InputError(f"limit must be between 1 and {MAX_LIST_LIMIT}, not {limit}")
        if status is not None and status not in lifecycle.STATES:
            raise InputError(f"unknown status {status!r}; choose from {', '.join(lifecycle.STATES)}")
        params: dict[str, Any] = {"limit": limit, "status": status}
        if before is not None:
            params.update(at=before.created_at, after_id=before.request_id)
        query = _LIST_PAGE[status is not None, before is not None]
        if within is not None:
            if not 1 <= within <= MAX_LIST_LIMIT:
                raise InputError(f"within must be between 1 and {MAX_LIST_LIMIT}, not {within}")
            window = _LIST_WINDOW[status is not None, before is not None].scalar_subquery()
            r = t.requests.c
            query = sa.select(t.requests).where(r.id.in_(window)).order_by(
                r.created_at.desc(), r.id.desc()).limit(sa.bindparam("limit"))
            params["within"] = within
        if filters is not None:
            query = _filtered(query, filters)
        # Equivalent on SQLite if mutated to never take this branch, and the branch itself runs only on
        # PostgreSQL, which the mutation run leaves out (see _votes_from_json for the tests that hold it).
        if self.conn.dialect.name == "postgresql":  # pragma: no mutate
            # One statement: the page with each request's votes (one snapshot, one round trip).
            rows = self.conn.execute(query.add_columns(_ROW_VOTES_PG), params).mappings().all()  # pragma: no mutate
            return [self._request_from_row(row, _votes_from_json(row)) for row in rows]  # pragma: no mutate
        rows = self.conn.execute(query, params).mappings().all()
        # The page's votes in one query (the votes' (request_id, approver)
        # unique index), so a listing shows who voted without a query per row.
        votes: dict[str, list[Vote]] = {}
        if rows:
            page = [row["id"] for row in rows]
            for rid, *vote in self.conn.execute(_PAGE_VOTES[self.conn.dialect.name], {"ids": page}):
                votes.setdefault(rid, []).append(_stored_vote(rid, *vote))
        return [self._request_from_row(row, votes.get(row["id"], ())) for row in rows]

    def listing_mark(self, status: str | None, nth: int, *, before: ListCursor | None = None) -> ListCursor | None:
        """The cursor after the ``nth`` request of a listing (by status, continuing after ``before``); None if shorter.

        One walk of ``nth`` index entries: where a bounded search
        (``list_requests(..., within=nth)``) stopped reading.
        """
        if not 1 <= nth <= MAX_LIST_LIMIT:
            raise InputError(f"nth must be between 1 and {MAX_LIST_LIMIT}, not {nth}")
        params: dict[str, Any] = {"skip": nth - 1, "status": status}
        if before is not None:
            params.update(at=before.created_at, after_id=before.request_id)
        row = self.conn.execute(_LIST_MARK[status is not None, before is not None], params).first()
        # The column's type (UtcTime) reads an aware UTC time or fails, and ListCursor checks it again.
        return None if row is None else ListCursor(row[0], row[1])

    def count_requests(self, status: str) -> int:
        """How many requests are in ``status`` (one index range count)."""
        q = sa.select(sa.func.count()).select_from(t.requests).where(t.requests.c.status == status)
        return int(self.conn.execute(q).scalar() or 0)

    # -- idempotency keys (the HTTP service's retried proposals) ----------

    def idempotent_request(self, principal: str, key: str) -> tuple[str, str] | None:
        """The (request id, proposal hash) stored under ``principal``'s idempotency ``key``, if any."""
        k = t.idempotency_keys.c
        row = self.conn.execute(
            sa.select(k.request_id, k.proposal_hash).where(k.principal == principal, k.key == key)
        ).first()
        return None if row is None else (str(row[0]), str(row[1]))

    def insert_idempotency_key(
        self, *, principal: str, key: str, request_id: str, proposal_hash: str, now: datetime
    ) -> None:
        """Remember that ``principal``'s ``key`` stored ``request_id`` (the primary key refuses a second)."""
        self._require_writable()
        self.conn.execute(t.idempotency_keys.insert().values(
            principal=principal, key=key, request_id=request_id, proposal_hash=proposal_hash, created_at=now))

    def request_ids(self, *, status: str, expires_before: datetime | None = None,
                    limit: int | None = None) -> list[str]:
        """Ids of requests in ``status`` (expiring before a time, if given), the first ``limit`` by id."""
        q = sa.select(t.requests.c.id).where(t.requests.c.status == status)
        if expires_before is not None:
            q = q.where(t.requests.c.expires_at <= expires_before)
        # The order only fixes which ids come first (every one is swept by some call): not mutated.
        return [r[0] for r in self.conn.execute(q.order_by(t.requests.c.id).limit(limit))]  # pragma: no mutate

    def transition(
        self, request_id: str, target: str, *, now: datetime, reason: str, current: Request | None = None,
        expires_at: datetime | None = None,
    ) -> Request:
        """Move a request to ``target`` if the lifecycle allows it; raises :class:`IllegalTransition`.

        ``reason`` becomes the request's ``status_reason``; it has no default,
        so every move says why it was made (who rejected, what was missing).
        ``current`` is the request as this transaction has already read it
        (it is then not read again); the update applies only while the
        stored status is still ``current.status``. ``expires_at``, when
        given, becomes the request's deadline in its new state. Returns the
        moved request.
        """
        self._require_writable()
        if current is None:
            current = self.get_request(request_id)
        elif current.id != request_id:
            raise StorageError(f"internal error: request {current.id} given for a move of {request_id}")
        lifecycle.check_transition(current.status, target)
        at = _require_utc(now, "now")
        # The deadline of the new state: the one given (a grant: when its warrant must be used by, counted
        # from the grant), else the request's own.
        until = current.expires_at if expires_at is None else _require_utc(expires_at, "expires_at")
        params: dict[str, Any] = {"rid": request_id, "from_status": current.status, "to_status": target, "now": at,
                                  "reason": reason, "expires_at": until}
        # The requests table only: the held audit rows can wait (see conn), so an approval's two events
        # are still written in one statement. The rows read with the head no longer hold (see _read).
        self._prefetched.clear()
        result = _MOVE_REQUEST.execute(self._conn, params)
        if result.rowcount != 1:
            # The write lock makes this unreachable; if it ever happens the
            # transaction must not go on as if the move had been made.
            raise StorageError(f"request {request_id} changed underneath this transaction")
        return dataclasses.replace(current, status=target, updated_at=at, status_reason=reason, expires_at=until)

    @staticmethod
    def _request_from_row(row: Any, votes: tuple[Vote, ...] | list[Vote], *, votes_read: bool = True) -> Request:
        try:
            proposal = json.loads(row["proposal"])
            decision = _decision_from_text(row["decision"])
        # PolicyError: JSON that is not a decision document. The engine validated it before storing it, so
        # this is the database's fault, not the policy's (which PolicyError alone would blame).
        except (ValueError, TypeError, KeyError, PolicyError) as exc:
            raise StorageError(f"request {row['id']} is stored corrupted: {exc}") from exc
        return Request(
            id=row["id"],
            status=row["status"],
            tier=row["tier"],
            requester=row["requester"],
            action_digest=row["action_digest"],
            proposal=proposal,
            decision=decision,
            policy_revision=row["policy_revision"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            updated_at=row["updated_at"],
            status_reason=row["status_reason"] or "",
            votes=tuple(votes),
            votes_read=votes_read,
        )

    # -- votes ------------------------------------------------------------

    def votes(self, request_id: str) -> tuple[Vote, ...]:
        """The votes on a request, in the order recorded."""
        return tuple(_stored_vote(request_id, *row) for row in _VOTES_OF.execute(self.conn, {"rid": request_id}))

    def insert_vote(
        self,
        *,
        request_id: str,
        approver: str,
        verdict: str,
        statement: Mapping[str, Any],
        signed_at: datetime,
        recorded_at: datetime,
    ) -> Vote:
        """Record a vote and return it as stored; a second vote by the same person raises :class:`ApprovalError`."""
        self._require_writable()
        # Checked before the insert, so a naive time is refused by its field's name (the column type would refuse
        # it too, but without naming it); the vote returned carries the times in UTC.
        signed_at = _require_utc(signed_at, "signed_at")
        recorded_at = _require_utc(recorded_at, "recorded_at")
        # Sorted for people reading the table; whoever checks the statement re-canonicalises it (RFC 8785) or
        # compares it parsed (audit reconciliation), so the key order cannot change a verdict.
        text = json.dumps(statement, sort_keys=True)  # pragma: no mutate
        # Built before the insert: its own checks (a known verdict) refuse bad input before anything is written.
        vote = Vote(approver=approver, verdict=verdict, signed_at=signed_at, recorded_at=recorded_at,
                    statement=json.loads(text))
        # No savepoint: the refusal below ends the whole transaction, which
        # rolls back, so nothing after the failed insert needs it usable.
        try:
            _INSERT_VOTE.execute(
                self.conn,
                {
                    "request_id": request_id,
                    "approver": approver,
                    "verdict": verdict,
                    "statement": text,
                    "signed_at": signed_at,
                    "recorded_at": recorded_at,
                },
            )
        except IntegrityError as exc:
            raise ApprovalError(
                f"{approver} has already voted on request {request_id}; a vote cannot be changed"
            ) from exc
        return vote

    # -- warrants ---------------------------------------------------------

    def insert_warrant(
        self, *, jti: str, request_id: str, token: str, kid: str, issued_at: datetime, expires_at: datetime
    ) -> WarrantRecord:
        """Record the one warrant of a request and return it as stored; a second raises :class:`StorageError`."""
        self._require_writable()
        # Checked before the insert, so a naive time is refused by name (the column type's own refusal
        # cannot say which time it was).
        issued_at = _require_utc(issued_at, "issued_at")
        expires_at = _require_utc(expires_at, "expires_at")
        # No savepoint: the refusal ends the transaction (see insert_vote).
        try:
            _INSERT_WARRANT.execute(
                self.conn,
                {"jti": jti, "request_id": request_id, "token": token, "kid": kid, "issued_at": issued_at,
                 "expires_at": expires_at},
            )
        except IntegrityError as exc:
            raise StorageError(f"request {request_id} already has a warrant") from exc
        return WarrantRecord(jti=jti, request_id=request_id, token=token, kid=kid, issued_at=issued_at,
                             expires_at=expires_at)

    def warrants_for(self, request_ids: Sequence[str]) -> dict[str, WarrantRecord]:
        """The warrants of several requests (those that have one), in one indexed query (a listing page)."""
        ids = list(request_ids)
        if not ids:
            return {}
        rows = self.conn.execute(_PAGE_WARRANTS[self.conn.dialect.name], {"ids": ids}).mappings()
        return {row["request_id"]: self._warrant_from_row(row) for row in rows}

    def warrant_for(self, request_id: str) -> WarrantRecord | None:
        """The warrant issued for a request, if any, with its consumption time."""
        row = self._read(_warrant_read(request_id)).mappings().first()
        return None if row is None else self._warrant_from_row(row)

    @staticmethod
    def _warrant_from_row(row: Any) -> WarrantRecord:
        return WarrantRecord(
            jti=row["jti"],
            request_id=row["request_id"],
            token=row["token"],
            kid=row["kid"],
            issued_at=row["issued_at"],
            expires_at=row["expires_at"],
            consumed_at=row["consumed_at"],
        )

    def consume(self, *, jti: str, request_id: str, now: datetime) -> None:
        """Mark a warrant id used; a second use raises :class:`InvalidWarrant` (the transaction stays usable).

        The primary key on ``jti`` is the single-use check: the insert skips
        a duplicate (``ON CONFLICT (jti) DO NOTHING``; on PostgreSQL it first
        waits for a concurrent insert of the same id to commit or roll back),
        and no row inserted means the id was already consumed.
        """
        self._require_writable()
        row = {"jti": jti, "request_id": request_id, "consumed_at": now}
        if _CONSUME[self.conn.dialect.name].execute(self.conn, row).rowcount != 1:
            raise InvalidWarrant(f"warrant {jti} was already used (replay)", code="replay")

    def is_consumed(self, jti: str) -> bool:
        """Whether a warrant id has been consumed (for reports, not for enforcement)."""
        q = sa.select(sa.func.count()).select_from(t.consumed).where(t.consumed.c.jti == jti)
        return bool(self.conn.execute(q).scalar_one())

    # The sweeps below join a request to its warrant on the foreign key (a
    # request has at most one warrant: unique request_id), and the warrant to
    # its consumption on the jti, as the guard and warrant_for do. Joined on
    # consumed.request_id instead, a consumption row of another jti (only a
    # hand edit writes one) doubled the request's row once its own warrant
    # was used too, and the second execution_unknown transition aborted every
    # expiry sweep from then on.

    def granted_consumed_lapsed(self, cutoff: datetime, *, limit: int | None = None) -> list[str]:
        """Granted requests whose warrant was consumed and expired by ``cutoff``, no outcome recorded.

        The warrant's own expiry, not a configured lifetime: each tier's
        policy may give its warrants a lifetime of their own (``limit`` at most).
        """
        q = (
            sa.select(t.requests.c.id)
            .select_from(t.requests.join(t.warrants).join(t.consumed, t.consumed.c.jti == t.warrants.c.jti))
            .where(t.requests.c.status == lifecycle.GRANTED, t.warrants.c.expires_at <= cutoff)
            # The order only fixes which request's audit event comes first; every one is swept either way.
            .order_by(t.requests.c.id)  # pragma: no mutate
            .limit(limit)
        )
        return [r[0] for r in self.conn.execute(q)]

    def granted_unused_expired(self, now: datetime, *, limit: int | None = None) -> list[str]:
        """Granted requests whose warrant lapsed unused, or that never got one before expiry (``limit`` at most)."""
        lapsed = (
            sa.select(t.requests.c.id)
            .select_from(t.requests.join(t.warrants).outerjoin(t.consumed, t.consumed.c.jti == t.warrants.c.jti))
            .where(
                t.requests.c.status == lifecycle.GRANTED,
                t.warrants.c.expires_at <= now,
                t.consumed.c.jti.is_(None),
            )
        )
        never = (
            sa.select(t.requests.c.id)
            .select_from(t.requests.outerjoin(t.warrants))
            .where(
                t.requests.c.status == lifecycle.GRANTED,
                t.requests.c.expires_at <= now,
                t.warrants.c.jti.is_(None),
            )
        )
        # The limit in SQL only bounds what is read; the last line is what keeps ``limit`` ids, and
        # every eligible request is swept by some call, in whichever order. So dropping or changing
        # these three lines' order and limit (equivalent mutants) changes no call's result beyond which
        # eligible ids come first; they are not mutated.
        if limit is not None:  # pragma: no mutate
            lapsed = lapsed.order_by(t.requests.c.id).limit(limit)  # pragma: no mutate
            never = never.order_by(t.requests.c.id).limit(limit)  # pragma: no mutate
        ids = {r[0] for r in self.conn.execute(lapsed)} | {r[0] for r in self.conn.execute(never)}
        return sorted(ids)[:limit]

    # -- revocations ------------------------------------------------------

    def insert_revocation(
        self, *, request_id: str, revoked_by: str, statement: Mapping[str, Any], now: datetime
    ) -> None:
        """Record who revoked a request, with their signed statement."""
        self._require_writable()
        self.conn.execute(
            t.revocations.insert().values(
                request_id=request_id,
                revoked_by=revoked_by,
                # Sorted for people reading the table; whoever checks the statement re-canonicalises it
                # (RFC 8785) before verifying, so the key order cannot change a verdict.
                statement=json.dumps(statement, sort_keys=True),  # pragma: no mutate
                revoked_at=now,
            )
        )

    # -- audit ------------------------------------------------------------

    def head(self) -> AuditEvent | None:
        """The last audit event, or None for an empty chain."""
        row = self.conn.execute(_HEAD_EVENT).mappings().first()
        return None if row is None else _event_from_row(row)

    def event_hash(self, seq: int) -> str | None:
        """The stored hash of event ``seq``, or None when there is none (a primary-key lookup).

        Answered without a query when the transaction read it with the chain
        head (:attr:`Store.anchored_seq`): in the same snapshot, under the
        same lock.
        """
        known = self._event_hash
        if known is not None and known[0] == seq:
            return known[1]
        row = _EVENT_HASH.execute(self.conn, {"seq": seq}).first()
        return None if row is None else str(row[0])

    def append(
        self, kind: str, *, request_id: str | None, payload: Mapping[str, Any], at: datetime
    ) -> AuditEvent:
        """Append one event to the hash chain, in this transaction.

        The event follows the head held in the ``audit_head`` row this
        transaction locked first (no query for the previous event); that row
        is moved to the last event once, when the transaction commits. The
        event's row is held back (see :attr:`conn`): written before the next
        statement of this transaction that uses the connection, or at its end
        together with the head.
        """
        self._require_writable()
        # What was read with the head does not show this event: no later read may be answered from it.
        self._prefetched.clear()
        if self._head is None:
            raise StorageError("internal error: a write transaction without the chain head")
        ev = event_after(*self._head, kind=kind, request_id=request_id, payload=payload, at=at)
        # Held back, and written with the next statement that asks for the connection or as the
        # transaction ends (see conn): what it reads sees the event either way.
        self._held_events.append({
            "seq": ev.seq,
            "at": ev.at,
            "kind": ev.kind,
            "request_id": ev.request_id,
            # Sorted for people reading the table; the hash covers the canonical (RFC 8785) form and the
            # payload is parsed back, so the key order changes nothing read: equivalent if mutated.
            "payload": json.dumps(ev.payload, sort_keys=True),  # pragma: no mutate
            "prev_hash": ev.prev_hash,
            "hash": ev.hash,
        })
        self._head = (ev.seq, ev.hash)
        self._head_moved = True
        return ev

    def _store_head(self) -> None:
        """Write the held audit rows and move the ``audit_head`` row to the head reached (before the commit)."""
        # Called once, as the transaction ends: nothing reads _head_moved after it.
        if self._failed is not None:
            raise self._failed
        self._write_held(final=True)

    def events(self, *, request_id: str | None = None) -> list[AuditEvent]:
        """The audit events in chain order (all, or those of one request)."""
        # seq is the primary key: SQLite returns rows in seq (rowid) order even without the clause, and the
        # PostgreSQL variants, where the clause matters, are outside the mutation run.
        q = sa.select(*_EVENT_COLUMNS).order_by(t.audit_events.c.seq)  # pragma: no mutate
        if request_id is not None:
            q = q.where(t.audit_events.c.request_id == request_id)
        return [_event_from_row(r) for r in self.conn.execute(q).mappings()]

    def request_events(self, request_id: str, kinds: Sequence[str]) -> list[AuditEvent]:
        """The events of one request of the given kinds, in chain order.

        An indexed lookup (``request_id``), so the guard and the warrant path
        can ask the chain what happened to a request without scanning it.
        """
        if not kinds:
            return []
        rows = self._read(_events_read(request_id, tuple(kinds))).mappings()
        return [_event_from_row(r) for r in rows]

    def iter_events(
        self, *, after_seq: int = 0,
        chunk: int = 2000,  # pragma: no mutate - the chunk only sets the batch size; every size gives the same events
    ) -> Iterator[AuditEvent]:
        """The events after ``after_seq`` in chain order, read ``chunk`` at a time (keyset on ``seq``).

        Each chunk is one primary-key range scan; only one chunk is held at a
        time, so ``audit verify`` and ``audit export`` run in constant memory
        however long the chain is (on PostgreSQL the read transaction of
        :meth:`Store.read` with ``snapshot=True`` keeps every chunk in one
        snapshot).
        """
        e = t.audit_events.c
        last = after_seq
        while True:
            rows = self.conn.execute(
                sa.select(*_EVENT_COLUMNS).where(e.seq > last).order_by(e.seq).limit(chunk)
            ).mappings().all()
            for row in rows:
                yield _event_from_row(row)
            if len(rows) < chunk:
                return
            last = int(rows[-1]["seq"])

    def event_times(self, *, after_seq: int, limit: int) -> list[tuple[int, datetime, str]]:
        """``(seq, at, kind)`` of up to ``limit`` events after ``after_seq``, in chain order (a key range scan).

        For a reader that needs only when each event happened and what it is
        (the notification dispatcher passing over a backlog); a row that
        cannot be read is an :class:`AuditChainError` naming its seq, as
        :meth:`iter_events` reports it.
        """
        e = t.audit_events.c
        rows = self.conn.execute(
            sa.select(e.seq, sa.type_coerce(e.at, sa.String), e.kind).where(e.seq > after_seq).order_by(e.seq)
            .limit(limit)
        ).all()
        out = []
        for seq, at, kind in rows:
            number = _stored_seq("audit event", seq)
            out.append((number, _stored_audit_time("audit event", number, at), str(kind)))
        return out

    # Defaults left unmutated: every seq is 1 or more (0 and 1 agree), and the chunk only sets the batch size.
    def iter_checkpoints(self, *, from_seq: int = 0, chunk: int = 2000) -> Iterator[Checkpoint]:  # pragma: no mutate
        """Stored checkpoints at ``from_seq`` or later, in sequence order, ``chunk`` at a time."""
        c = t.checkpoints.c
        last = from_seq - 1
        while True:
            query = sa.select(*_CHECKPOINT_COLUMNS).where(c.seq > last).order_by(c.seq)
            # Not mutated: without the limit the first query returns every checkpoint and the next none, the same
            # checkpoints in the same order; the limit only bounds the memory held.
            rows = self.conn.execute(query.limit(chunk)).mappings().all()  # pragma: no mutate
            for r in rows:
                yield _checkpoint_from_row(r)
            if len(rows) < chunk:
                return
            last = int(rows[-1]["seq"])

    def events_through(self, seq: int) -> int:
        """How many events have a seq from 1 to ``seq`` (a count over the primary key, no row read)."""
        e = t.audit_events.c
        q = sa.select(sa.func.count()).select_from(t.audit_events).where(e.seq >= 1, e.seq <= seq)
        return int(self.conn.execute(q).scalar_one())

    def checkpoint_count(self) -> int:
        """How many checkpoints are stored."""
        return int(self.conn.execute(sa.select(sa.func.count()).select_from(t.checkpoints)).scalar_one())

    def checkpoint_kid_at(self, seq: int) -> str | None:
        """The key id of the stored checkpoint at ``seq`` (a primary-key lookup), or None."""
        kid = self.conn.execute(sa.select(t.checkpoints.c.kid).where(t.checkpoints.c.seq == seq)).scalar()
        # The column is a non-null string: str() only tells mypy so. (Its one caller compares the result
        # with a key id, so a mutant that returns "None" for a missing row is equivalent.)
        return None if kid is None else str(kid)  # pragma: no mutate

    def rare_events(self) -> list[AuditEvent]:
        """The ``keyring_replaced`` and ``anchor_reinitialized`` events, in chain order (a partial index)."""
        e = t.audit_events.c
        # Its callers sort what they use by seq; the order here only makes the list read naturally.
        q = sa.select(*_EVENT_COLUMNS).where(e.kind.in_(t.RARE_KINDS)).order_by(e.seq)  # pragma: no mutate
        return [_event_from_row(r) for r in self.conn.execute(q).mappings()]

    def iter_request_ids(self, *, chunk: int) -> Iterator[list[str]]:
        """Every request id in id order, ``chunk`` ids per list (keyset on the primary key)."""
        r = t.requests.c
        # "" before the first page would select the same ids (every id sorts after it), and SQLite walks the
        # primary key in order without the clause; the PostgreSQL variants are outside the mutation run.
        last: str | None = None  # pragma: no mutate
        while True:
            q = sa.select(r.id).order_by(r.id).limit(chunk)  # pragma: no mutate
            if last is not None:
                q = q.where(r.id > last)
            ids = [row[0] for row in self.conn.execute(q)]
            if ids:
                yield ids
            if len(ids) < chunk:
                return
            last = ids[-1]

    def orphan_request_ids(self) -> list[str]:
        """Request ids that events or warrant/vote rows name but that have no request row (normally none)."""
        r = t.requests.c
        found: set[str] = set()
        for table in (t.audit_events, t.votes, t.warrants, t.consumed):
            col = table.c.request_id
            q = (
                sa.select(col).distinct()
                .select_from(table.outerjoin(t.requests, r.id == col))
                .where(
                    # Chain-level events have no request; without this filter
                    # they would add the id "None", which reconciles to no rows,
                    # so removing it changes only the work done.
                    col.is_not(None),  # pragma: no mutate
                    r.id.is_(None),
                )
            )
            found.update(str(row[0]) for row in self.conn.execute(q))
        return sorted(found)

    def request_ids_with_events_after(self, seq: int) -> list[str]:
        """Distinct request ids of the events after ``seq`` (a primary-key range scan of that tail)."""
        e = t.audit_events.c
        q = sa.select(e.request_id).distinct().where(e.seq > seq, e.request_id.is_not(None))
        return sorted(str(row[0]) for row in self.conn.execute(q))

    def reconcile_rows(self, request_ids: Sequence[str]) -> list[RequestRows]:
        """What ``audit verify`` holds against the chain for each of ``request_ids`` (indexed lookups)."""
        ids = list(request_ids)
        groups = {rid: RequestRows(rid) for rid in ids}
        req = t.requests.c
        for r in self.conn.execute(
            sa.select(req.id, req.status, req.tier, req.action_digest).where(req.id.in_(ids))
        ):
            groups[r.id].request = (r.status, r.tier, r.action_digest)
        e = t.audit_events.c
        for r in self.conn.execute(
            sa.select(e.request_id, e.seq, e.kind, e.payload).where(e.request_id.in_(ids))
            # Grouped by request_id below, so only the seq order within a request matters.
            .order_by(e.request_id, e.seq)  # pragma: no mutate
        ):
            try:
                payload = json.loads(r.payload)
            except ValueError as exc:
                # Reconciliation runs after the chain walk, which parsed these payloads and refused any that is
                # not an object (AuditEvent), so this guard and the one below are never reached by a test.
                raise StorageError(f"audit event {r.seq} has a corrupted payload") from exc  # pragma: no mutate
            facts = payload if isinstance(payload, dict) else {}  # pragma: no mutate
            groups[r.request_id].events.append(EventFacts(int(r.seq), r.kind, facts))
        v = t.votes.c
        for r in self.conn.execute(
            # Insertion (rowid) order on SQLite either way; the PostgreSQL variants are outside the mutation run.
            sa.select(v.request_id, v.approver, v.verdict, v.statement).where(v.request_id.in_(ids))
            .order_by(v.id)  # pragma: no mutate
        ):
            groups[r.request_id].votes.append((r.approver, r.verdict, r.statement))
        w = t.warrants.c
        for wr in self.conn.execute(sa.select(w.request_id, w.jti).where(w.request_id.in_(ids))):
            groups[wr.request_id].warrant_jti = wr.jti
        c = t.consumed.c
        for cr in self.conn.execute(sa.select(c.request_id, c.jti).where(c.request_id.in_(ids))):
            groups[cr.request_id].consumed.add(cr.jti)
        return [groups[rid] for rid in ids]

    def insert_checkpoint(self, cp: Checkpoint) -> None:
        """Store a signed checkpoint of the chain head (idempotent per sequence number)."""
        self._require_writable()
        self._prefetched.clear()
        # Held back with the events (see append and conn).
        self._held_checkpoints.append(
            {"seq": cp.seq, "head_hash": cp.head_hash, "at": cp.at, "token": cp.token, "kid": cp.kid})

    def signing_kids(self) -> list[str]:
        """The engine key id the database was last signed with: the newest checkpoint's, else a warrant's.

        One indexed single-row read, not a scan: enough to tell whether a
        keyring is the one this database was signed with (a keyring keeps
        every key it ever had, so the newest checkpoint's key must be in it).
        """
        # scalar() reads one row whatever the limit: the limits only spare the database the rest.
        kid = self.conn.execute(
            sa.select(t.checkpoints.c.kid).order_by(t.checkpoints.c.seq.desc()).limit(1)  # pragma: no mutate
        ).scalar()
        if kid is None:
            kid = self.conn.execute(sa.select(t.warrants.c.kid).limit(1)).scalar()  # pragma: no mutate
        return [] if kid is None else [str(kid)]

    def has_checkpoints(self) -> bool:
        """Whether any checkpoint is stored (one indexed row at most is read)."""
        return self.conn.execute(_ANY_CHECKPOINT).first() is not None

    def last_checkpoint(self) -> Checkpoint | None:
        """The stored checkpoint with the highest sequence number, if any."""
        r = self.conn.execute(
            # first() reads one row whatever the limit: the limit only spares the database the rest.
            sa.select(*_CHECKPOINT_COLUMNS).order_by(t.checkpoints.c.seq.desc()).limit(1)  # pragma: no mutate
        ).mappings().first()
        return None if r is None else _checkpoint_from_row(r)


def _stored_vote(request_id: str, approver: str, verdict: str, signed_at: str, recorded_at: str,
                 statement: str) -> Vote:
    """A vote as stored (its times as text); anything that does not read back is the database's fault.

    A statement that is not a JSON object, a time not in the store's one
    spelling or an unknown verdict raises :class:`StorageError` naming the
    request, on every path that reads votes (one request's, a listing page's).
    """
    try:
        if type(approver) is not str:
            raise ValueError(f"the approver is a {type(approver).__name__}, not text")
        doc = json.loads(statement, parse_constant=_refuse_constant)
        if not isinstance(doc, dict):
            raise ValueError(f"the statement is a JSON {type(doc).__name__}, not an object")
        return Vote(approver=approver, verdict=verdict, signed_at=t.parse_time(signed_at),
                    recorded_at=t.parse_time(recorded_at), statement=doc)
    except (ValueError, TypeError, RecursionError) as exc:
        raise StorageError(f"a vote on request {request_id} is stored corrupted: {exc}") from exc


def _votes_from_json(row: Any) -> list[Vote]:
    """A listed request's votes, from its ``page_votes`` column (:data:`_ROW_VOTES_PG`), as the votes table reads."""
    # PostgreSQL only: the mutation run leaves the PostgreSQL variants out (docs/mutation.md), so no test
    # there executes this; tests/workflow/test_listing_differs_from_full_reads.py's and
    # test_request_row_corrupted.py's postgres variants hold it (order, times, a corrupted vote named).
    # pragma: no mutate block
    return [_stored_vote(row["id"], *vote) for vote in row["page_votes"] or ()]


#: How many parsed decisions :func:`_decision_from_text` keeps. Enough for the first pages of the
#: listings a console polls and every request in flight; not more, because each cached decision is about
#: seven objects the cyclic collector tracks. Deep listing pages replace entries all the time, and with
#: 4,096 (about 28,000 objects) the collections that walk them paused a 100-row page for 15 to 30 ms:
#: the listing's p99 at 10^6 requests was twice its p50 (docs/benchmarks.md).
DECISION_CACHE_SIZE = 1024  # pragma: no mutate - any size is as correct; it only sets speed and memory


@functools.lru_cache(maxsize=DECISION_CACHE_SIZE)
def _decision_from_text(text: str) -> Decision:
    """Parse and validate a stored decision; cached by its exact text (decisions are immutable)."""
    return Decision.from_dict(json.loads(text))


def _event_from_row(row: Any) -> AuditEvent:
    """The stored event; one that cannot be read as an event was edited around the engine (AuditChainError)."""
    seq = _stored_seq("audit event", row["seq"])
    at = _stored_audit_time("audit event", seq, row["at"])
    try:
        payload = json.loads(row["payload"], parse_constant=_refuse_constant)
    except (ValueError, TypeError, RecursionError) as exc:
        raise _unreadable("audit event", seq, f"payload: not JSON: {exc}") from None
    try:
        return AuditEvent(seq=seq, at=at, kind=row["kind"], request_id=row["request_id"], payload=payload,
                          prev_hash=row["prev_hash"], hash=row["hash"])
    except ValidationError as exc:
        raise _unreadable("audit event", seq, "; ".join(exc.problems)) from None


def _checkpoint_from_row(row: Any) -> Checkpoint:
    """The stored checkpoint; one that cannot be read as a checkpoint was edited around the engine."""
    seq = _stored_seq("audit checkpoint", row["seq"])
    at = _stored_audit_time("audit checkpoint", seq, row["at"])
    try:
        return Checkpoint(seq=seq, head_hash=row["head_hash"], at=at, token=row["token"], kid=row["kid"])
    except ValidationError as exc:
        raise _unreadable("audit checkpoint", seq, "; ".join(exc.problems)) from None


def _stored_seq(what: str, seq: Any) -> int:
    """A stored seq; SQLite keeps whatever type a writer around the engine put in the column (text, a float)."""
    if type(seq) is not int:
        shown = shorten(repr(seq), 40)
        raise _unreadable(what, shown, f"seq: {shown} is not an integer")
    return seq


def _stored_audit_time(what: str, seq: int, text: Any) -> datetime:
    """An event's or checkpoint's stored time, parsed; another spelling is an edit around the engine."""
    try:
        return parse_audit_time(text)
    except ValueError as exc:
        raise _unreadable(what, seq, f"at: {exc}") from None


def _unreadable(what: str, seq: Any, why: str) -> AuditChainError:
    return AuditChainError(f"{what} {seq} is stored corrupted: {why}; the database was changed around the engine")


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (None for in-memory databases, or a URL that does not parse).

    Read as SQLAlchemy reads it, percent-escapes decoded: the file the
    driver opens is the one the store creates 0600 and checks.
    """
    try:
        path = sa.engine.make_url(url).database
    except (ValueError, sa.exc.ArgumentError):
        return None
    # Made absolute as the driver does (os.path.abspath, by text): resolved by the kernel instead, a `..`
    # after a symbolic link would name another file than the one SQLite opens.
    return None if not path or path == ":memory:" else Path(os.path.abspath(path))


#: The drivers the store runs on: SQLite through the standard library's, PostgreSQL through psycopg 3.
STATE_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg"}


def check_state_url(url: str) -> str:
    """``url`` with PostgreSQL's short schemes spelled for psycopg 3; raises ConfigError for a URL the store refuses.

    Refused, naming the field (``invalid_state_url``, exit 2) and never
    echoing a URL that does not parse (it may hold a password): a URL that
    does not parse, a database other than SQLite or PostgreSQL, a driver
    other than the ones the store runs on, and a SQLite URI filename.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix):]
    example = "e.g. sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
    try:
        parsed = sa.engine.make_url(url)
        backend = parsed.get_backend_name()
    except (ValueError, sa.exc.ArgumentError):
        # Not echoed: a URL that does not parse cannot be redacted, and may hold a password.
        raise ConfigError(f"state: not a database URL ({example})", code="invalid_state_url") from None
    if backend not in STATE_DRIVERS:
        raise ConfigError(f"state: {backend[:40]!r} databases are not supported: SQLite or PostgreSQL ({example})",
                          code="invalid_state_url")
    # Read from the name, not from the dialect (loading an unknown one raises); plain sqlite:// is pysqlite.
    driver = parsed.drivername.partition("+")[2] or STATE_DRIVERS[backend]
    if driver != STATE_DRIVERS[backend]:
        # Another driver opens its file or server its own way, past the checks made for these two.
        raise ConfigError(f"state: the {driver[:40]!r} driver is not supported for {backend}; use "
                          f"{backend}+{STATE_DRIVERS[backend]}:// or plain {backend}:// ({example})",
                          code="invalid_state_url")
    if backend == "sqlite":
        _check_sqlite_url(parsed, example)
    return url


def _check_sqlite_url(parsed: sa.engine.URL, example: str) -> None:
    """A SQLite state URL names a file by its path, with at most a ``timeout`` (seconds) after it.

    No host or user. No ``uri``: SQLite would open the file a ``file:`` URI
    names (decoded again, relative to what, with what mode), not the path
    the store creates 0600 and checks, so it could check one file and keep
    live warrant tokens in another, created with the umask's mode. No other
    parameter the driver takes (``check_same_thread``, ``isolation_level``,
    ...): each changes how the store's connections behave, or is silently
    ignored (``mode=ro`` without ``uri``), or crashes the driver with a bad
    value. The store sets its own busy wait, so ``timeout`` is only checked.
    """
    if parsed.host or parsed.port or parsed.username or parsed.password:
        raise ConfigError(f"state: a SQLite URL names a file, not a host or user ({example})",
                          code="invalid_state_url")
    if "uri" in parsed.query:  # Named first, whatever else the URL holds: it is the one a user means.
        raise ConfigError("state: SQLite URI filenames (the uri parameter) are not supported; give the "
                          "state file's path, e.g. sqlite:///state.db or sqlite:////var/lib/hitlgate/state.db",
                          code="invalid_state_url")
    for key, value in parsed.query.items():
        if key != "timeout":
            raise ConfigError(f"state: the SQLite URL parameter {key[:40]!r} is not supported (only timeout)",
                              code="invalid_state_url")
        try:
            ok = isinstance(value, str) and math.isfinite(float(value)) and float(value) >= 0
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError("state: the SQLite URL parameter timeout must be one number of seconds",
                              code="invalid_state_url")


def _describe_mode(path: Path) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "it is on a read-only filesystem"
        st = os.stat(path)
    except OSError as exc:
        # os.statvfs and os.stat always set strerror; str(exc) is only a fallback.
        return exc.strerror or str(exc)  # pragma: no mutate
    return f"mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid}, you are uid {os.geteuid()}"


def _writable(path: Path) -> bool:
    """Whether this process may write ``path`` (``access(2)``: permissions and read-only mounts)."""
    return os.access(path, os.W_OK)


@dataclass(frozen=True)
class _SqliteAccess:
    """How a SQLite state file can be opened, and why not read-write when it cannot."""

    url: str
    read_only_reason: str | None = None


def _create_private_file(path: Path) -> None:
    """Create the empty state file with mode 0600 before SQLite opens it.

    ``warrants.token`` holds bearer tokens, so nobody but the owner may read
    the file. SQLite would create it with the umask's mode (0644 under the
    usual 022); an empty file is a valid empty database, and SQLite creates
    its ``-wal`` and ``-shm`` files with the database file's mode, so all
    three end up 0600. The process umask is not touched (it is global to
    every thread). A file that already exists is left alone: its mode is
    never loosened, and a world-readable one is reported by ``doctor``.
    """
    try:
        # 0600 from the first moment (the fchmod below only undoes a umask that took more than group
        # and others' bits); O_EXCL | O_NOFOLLOW: never through a link planted at the path. Equivalent
        # mutants drop O_NOFOLLOW and O_CLOEXEC together (| -> &): O_CREAT | O_EXCL alone already fails on
        # any existing path, a link included, and the descriptor is closed a few lines below.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC  # pragma: no mutate
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        # The caller creates the file only where none exists (following links), so what exists now either
        # is a dangling link or appeared since; `or` for `and` differs only for a file created or removed in
        # that instant (an equivalent mutant outside a race).
        if path.is_symlink() and not path.exists():  # pragma: no mutate
            # A link to a file that does not exist: SQLite would follow it and create the target
            # (with the umask's mode, wherever the link points). Creating a file through a planted
            # link is the classic symlink attack; an operator who links the store creates the file.
            raise StorageError(
                f"cannot create the state store {path}: it is a symbolic link to a missing or unreachable "
                f"file ({os.readlink(path)}); create that file first, or remove the link",
                code="state_unwritable",
            ) from None
        return  # Another process created it first; its creator chose the mode.
    except OSError as exc:
        raise StorageError(
            f"cannot create the state store {path}: {exc.strerror or exc}", code="state_unwritable"
        ) from exc
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def state_file_exposure(url: str) -> list[str]:
    """Problems with who may read a SQLite state file and its ``-wal``/``-shm`` files (empty: none).

    A file readable or writable by group or others exposes live warrant
    tokens (or lets someone forge state); ``hitlgate doctor`` warns about it.
    """
    path = _sqlite_path(url) if _is_sqlite(url) else None
    if path is None:
        return []
    found = []
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            st = os.stat(p)
        except OSError:
            continue
        if stat.S_IMODE(st.st_mode) & 0o077:
            found.append(
                f"state file {p} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}) and "
                f"holds live warrant tokens; run: chmod 600 {p}"
            )
    return found


def _sqlite_access(url: str) -> _SqliteAccess:
    """Check the state file and its directory before SQLite does, to say which path and why.

    SQLite needs to write the file and to create ``-wal``/``-shm`` files next
    to it. A file this process may only read (an auditor's copy, a
    read-only mount) is opened read-only (``mode=ro``, plus ``immutable``
    when the directory cannot hold SQLite's shared-memory file either):
    reading commands work on it, writing ones are refused with the reason.
    """
    path = _sqlite_path(url)
    if path is None:
        return _SqliteAccess(url)
    parent = path.parent
    if not parent.exists():
        try:
            # The store holds live warrant tokens: a directory we create for
            # it is 0700, whatever the umask (an existing one keeps its mode).
            make_private_dirs(parent)
        except OSError as exc:
            raise StorageError(
                f"cannot create the state directory {parent}: {exc.strerror or exc}", code="state_unwritable"
            ) from exc
    if not os.access(parent, os.X_OK):
        raise StorageError(
            f"cannot open the state store {path}: its directory {parent} cannot be entered "
            f"(permission denied: {_describe_mode(parent)})",
            code="state_unreadable",
        )
    if not path.exists():
        if not _writable(parent):
            raise StorageError(
                f"cannot create the state store {path}: its directory {parent} is not writable "
                f"({_describe_mode(parent)})",
                code="state_unwritable",
            )
        _create_private_file(path)
        return _SqliteAccess(url)
    if not os.access(path, os.R_OK):
        raise StorageError(
            f"cannot open the state store {path}: permission denied ({_describe_mode(path)})",
            code="state_unreadable",
        )
    sidecars = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    dir_ok = _writable(parent) or all(p.exists() and _writable(p) for p in sidecars)
    if _writable(path) and dir_ok:
        return _SqliteAccess(url)
    if not _writable(path):
        why = f"the file is not writable ({_describe_mode(path)})"
    else:
        why = f"its directory {parent} is not writable ({_describe_mode(parent)})"
    # A directory SQLite cannot write also cannot hold the shared-memory
    # file a read-only WAL reader needs: then the copy is read as immutable.
    # The file: URI is escaped for SQLite, and the URL around it for SQLAlchemy, which decodes its
    # database part once before SQLite decodes the URI: escaped once, a '#' or '%' in the name would
    # reach SQLite bare, and it would open another file, without mode=ro. The path is absolute (see
    # _sqlite_path), after an empty authority: a path starting with // would otherwise be read as one.
    query = {"mode": "ro", **({"immutable": "1"} if not _writable(parent) else {}), "uri": "true"}
    ro_url = sa.engine.URL.create("sqlite", database=f"file://{quote(str(path))}", query=query)
    return _SqliteAccess(ro_url.render_as_string(hide_password=False), read_only_reason=why)


#: A pooled PostgreSQL connection idle longer than this is pinged before use (seconds).
PING_AFTER_IDLE_S = 5.0

#: Pooled PostgreSQL connections kept open per process (threads of one server beyond it use overflow).
PG_POOL_SIZE = 16


def _make_pg_engine(url: str) -> Engine:
    """A PostgreSQL engine whose pool pings a connection only after it sat idle.

    SQLAlchemy's ``pool_pre_ping`` sends ``SELECT 1`` on every checkout:
    one more round trip per transaction, seven per approval flow. A
    connection that was used a moment ago is as alive as a ping would show,
    so only one idle for :data:`PING_AFTER_IDLE_S` is pinged (the case
    pre-ping exists for: a server restarted while the pool slept). A dead
    one is replaced before use (``DisconnectionError`` makes the pool
    reconnect); a server lost mid-burst fails that transaction, and
    SQLAlchemy then drops the whole pool, as it does with pre-ping.
    """
    # PostgreSQL only: the mutation run leaves the PostgreSQL variants out (docs/mutation.md), so no test
    # there executes this; tests/workflow's postgres variants and the two-replica service test do.
    # pragma: no mutate block
    engine = sa.create_engine(url, future=True, pool_size=PG_POOL_SIZE, max_overflow=2 * PG_POOL_SIZE)

    @sa_event.listens_for(engine, "connect")
    def _on_connect(_dbapi_conn: Any, record: Any) -> None:
        record.info["hitlgate_idle_since"] = time.monotonic()

    @sa_event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["hitlgate_idle_since"] = time.monotonic()

    @sa_event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("hitlgate_idle_since")
        if since is not None and time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - any failure means: do not use this connection.
            raise sa.exc.DisconnectionError(f"pooled connection failed its ping: {exc}") from exc

    return engine


def _make_engine(url: str, *, read_only: bool) -> Engine:
    if not _is_sqlite(url):
        return _make_pg_engine(url)
    # The driver's own busy wait, for the journal_mode PRAGMA that runs before busy_timeout is set below; a
    # wait there needs another process converting the same file at that instant, which no test can time.
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})  # pragma: no mutate

    sa_event.listen(engine, "close", _close_wal)

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" hook below: the
        # driver's own implicit BEGIN is DEFERRED, which makes concurrent
        # writers fail instead of queueing.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            wal = False
            if not read_only and ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
                wal = str(cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower() == "wal"
            cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_MS)}")
            cur.execute("PRAGMA foreign_keys=ON")
            if not read_only:
                # Security state (consumed warrant ids) must survive a power loss. In WAL mode the commit
                # writes the log without syncing it (NORMAL), and transaction() syncs the log file once the
                # write lock is released: see _sync_wal. Any other journal keeps FULL (NORMAL there is not
                # even safe from corruption on a power loss).
                cur.execute(f"PRAGMA synchronous={'NORMAL' if wal else 'FULL'}")
                main = [row[2] for row in cur.execute("PRAGMA database_list") if row[1] == "main"]
                if wal and main and main[0]:
                    _record.info[_WAL_FILE] = f"{main[0]}-wal"
        finally:
            cur.close()

    return engine


_BEGIN_WRITE = Prepared(sa.text("BEGIN IMMEDIATE"))
_BEGIN_READ = Prepared(sa.text("BEGIN DEFERRED"))


@contextmanager
def transaction(conn: Connection, *, write: bool) -> Iterator[Connection]:
    """``conn.begin()``, committed on success and rolled back on any error; on SQLite with the BEGIN it needs.

    The connection hands transaction control to this (``isolation_level =
    None``): the driver's own implicit BEGIN is DEFERRED, which makes
    concurrent writers fail instead of queueing, so a writer sends ``BEGIN
    IMMEDIATE`` (it takes the write lock now, waiting up to the busy
    timeout) and a reader ``BEGIN DEFERRED`` (one snapshot for all its
    statements). Sent here, not from a ``begin`` event listener: any
    listener on the engine makes SQLAlchemy dispatch its execution events
    around every statement (3-13% of an approval flow's CPU on SQLite,
    measured in stop 31's interleaved runs).
    A statement run on a SQLite connection outside this (``Store.read_first``)
    is its own implicit transaction, one snapshot.
    """
    with conn.begin():
        if conn.dialect.name == "sqlite":
            (_BEGIN_WRITE if write else _BEGIN_READ).execute(conn)
        yield conn
    # Committed (an error above rolled back and propagated): on SQLite, make it durable before the caller acts on
    # it. PostgreSQL's COMMIT waits for its flush itself (synchronous_commit): committing without waiting and
    # then waiting outside the chain head's lock (a transaction of one statement that takes an id) cost more
    # round trips than the shared flush saved, on 2 cores: 49 -> 39 flows/s (bench_flows, interleaved A/B).
    if write and _WAL_FILE in conn.info:
        _sync_wal(conn.info)


#: Where a SQLite connection in WAL mode keeps its log file's path, and the descriptor it syncs it through
#: (``info`` of its connection record, which lives as long as the driver's connection).
_WAL_FILE = "hitlgate_wal_file"
_WAL_FD = "hitlgate_wal_fd"


def _sync_wal(info: dict[str, Any]) -> None:
    """Make what this connection just committed survive a power loss: fsync the WAL, after the lock is released.

    A write transaction on SQLite commits with ``synchronous=NORMAL``: its
    log frames are written, not synced, so the write lock passes to the
    next writer at once instead of after a disk flush. The committer then
    syncs the log file here before the write returns (and before anything
    waiting for the commit, such as the anchor's checkpoint, runs): one
    fsync of the file covers every frame written before it, so writers in
    other processes that sync at the same moment share the flush (a group
    commit; measured in ``bench/bench_flows.py``). The log only restarts
    after a checkpoint, which syncs it first (and the database after), so
    frames no longer in it are on disk already.

    The log is opened once per connection (not following a symbolic link,
    never waiting on a FIFO, a regular file only) and kept open: an error
    the kernel reports for a failed write-back reaches every descriptor
    open when it happened, which a descriptor opened afresh would not see.
    The log must still be the file this connection has open: one gone or
    replaced (by whoever can write the database's directory) is refused,
    rather than syncing something else.

    What a reader sees may be a few milliseconds ahead of the disk, as on
    PostgreSQL with ``synchronous_commit`` off, but every effect hitlgate
    has on a write (a warrant handed out, an action let run, a checkpoint
    anchored) follows its own write, which syncs everything before it. Any
    failure is a :class:`StorageError`: the caller learns the write may not
    be durable and does not act on it.
    """
    path = str(info[_WAL_FILE])
    kept: _Descriptor | None = info.get(_WAL_FD)
    try:
        if kept is None:
            opened = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            kept = _Descriptor(opened)
            if not stat.S_ISREG(os.fstat(opened).st_mode):
                kept.close()
                raise StorageError(f"committed, but {path} is not a regular file, so it cannot be flushed to disk; "
                                   "what this write recorded may be lost on a power failure")
            info[_WAL_FD] = kept
        fd = kept.fd
        held, named = os.fstat(fd), os.stat(path, follow_symlinks=False)
        if (held.st_dev, held.st_ino) != (named.st_dev, named.st_ino):
            raise StorageError(f"committed, but {path} was replaced while the store had it open, so what this "
                               "write recorded cannot be flushed to disk; it is reported as failed")
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(f"committed, but flushing {path} to disk failed: {exc.strerror or exc}; what this "
                           "write recorded may be lost on a power failure, so it is reported as failed") from exc


class _Descriptor:
    """A file descriptor :func:`_sync_wal` keeps, closed with its connection or when this object is dropped.

    The pool's ``close`` event closes it with the driver's connection; an
    engine dropped without being disposed fires no such event, so the
    descriptor is also closed when the connection record's ``info`` (and
    with it this object) is collected.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.close = weakref.finalize(self, _close_quietly, fd)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _close_wal(_dbapi_conn: Any, record: Any) -> None:
    """Close the descriptor :func:`_sync_wal` kept, with the driver's connection (the pool's ``close`` event)."""
    kept = record.info.pop(_WAL_FD, None)
    if kept is not None:
        kept.close()


def _stored_times(fields: Mapping[Any, Any], names: Sequence[str], prefix: str = "", of: str = "") -> dict[str, Any]:
    """``fields`` with the stored text of each time in ``names`` (under ``prefix``) parsed; None stays None."""
    out = dict(fields)
    for name in names:
        text = fields[prefix + name]
        try:
            out[prefix + name] = None if text is None else t.parse_time(str(text))
        except ValueError as exc:
            raise StorageError(f"request {fields['id']} is stored corrupted: {of}{name}: {exc}") from None
    return out


def decode_peeked(fields: Mapping[str, Any]) -> tuple[Request, WarrantRecord | None]:
    """The request and warrant of a :meth:`Store.peek_request` row; :class:`StorageError` if it is corrupted.

    Every refusal names the request: a proposal or decision that is not
    what the engine stored, or a time in another spelling (of the request,
    its warrant or the warrant's consumption).
    """
    fields = _stored_times(fields, _REQUEST_TIMES)
    req = Transaction._request_from_row(fields, (), votes_read=False)
    if fields["warrant_jti"] is None:
        return req, None
    fields = _stored_times(fields, _WARRANT_TIMES, "warrant_", "its warrant's ")
    return req, Transaction._warrant_from_row(
        {**{name: fields[f"warrant_{name}"] for name in _WARRANT_LABELS},
         "consumed_at": fields["warrant_consumed_at"]})


class Store:
    """The state store. Open it with :meth:`open`; close it with :meth:`close`."""

    def __init__(self, engine: Engine, url: str, *, read_only_reason: str | None = None) -> None:
        self.engine = engine
        self.url = url
        #: Why the store was opened read-only (None: read-write).
        self.read_only_reason = read_only_reason
        self._migrate_lock = threading.Lock()
        #: The seq of the event a write will compare with the audit anchor (its newest checkpoint's), asked before
        #: the write begins, so the hash of that event comes with the locked chain head (on SQLite in the same
        #: statement, on PostgreSQL in the same round trip) instead of in a query of its own; None: no such
        #: comparison. Set by the audit log. What is compared is still read under the lock: a different seq by
        #: then is queried as before.
        self.anchored_seq: Callable[[], int | None] | None = None

    @property
    def read_only(self) -> bool:
        """Whether the store was opened read-only (see :meth:`open`)."""
        return self.read_only_reason is not None

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect to ``url`` and create or migrate the schema.

        ``postgresql://`` and ``postgres://`` URLs use psycopg 3 (the driver
        hitlgate depends on), not SQLAlchemy's default psycopg2.
        """
        url = check_state_url(url)
        if not _is_sqlite(url) and importlib.util.find_spec("psycopg") is None:
            # Without this, SQLAlchemy's import of the driver surfaces as an internal error.
            raise StorageError("state: PostgreSQL needs the postgres extra (psycopg is not installed): "
                               "pip install 'hitlgate[postgres]' (from a checkout: pip install -e '.[postgres]')",
                               code="missing_extra")
        try:
            access = _sqlite_access(url) if _is_sqlite(url) else _SqliteAccess(url)
        except (OSError, ValueError) as exc:
            # What the checks themselves could not ask of the file system (a name too long, a loop of
            # links in the directories, an I/O error, a NUL byte in the path): the path and the reason,
            # never an internal error.
            raise StorageError(f"cannot open the state store {_sqlite_path(url)}: "
                               f"{getattr(exc, 'strerror', None) or exc}", code="state_unreadable") from exc
        try:
            engine = _make_engine(access.url, read_only=access.read_only_reason is not None)
        except (ValueError, TypeError) as exc:
            # What the driver refuses of the URL before connecting (the checks above should leave nothing).
            raise StorageError(f"cannot open the state store {_redact(url)}: {exc}") from exc
        try:
            store = cls(engine, url, read_only_reason=access.read_only_reason)
            if store.read_only:
                store._require_current_schema()
            else:
                store.migrate()
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot open the state store {_redact(url)}: {_db_message(exc)}") from exc
        return store

    def _require_current_schema(self) -> None:
        """A read-only store cannot be migrated: it must already be at the latest version."""
        version = self.schema_version()
        if version != t.LATEST_VERSION:
            raise StorageError(
                f"the state store {_redact(self.url)} is read-only ({self.read_only_reason}) and at schema "
                f"version {version}, but this hitlgate needs version {t.LATEST_VERSION}; open it writable once "
                "to migrate it",
                code="read_only",
            )

    @property
    def url_for_people(self) -> str:
        """The store's URL without its password, for messages."""
        return _redact(self.url)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return str(self.engine.dialect.name)

    def schema_version(self) -> int:
        """The highest migration applied (0 for an empty database)."""
        with self.engine.connect() as conn:
            # SQLite matches table names case-insensitively; the PostgreSQL variants are outside the mutation run.
            if not sa.inspect(conn).has_table("schema_version"):  # pragma: no mutate
                return 0
            v = conn.execute(sa.select(sa.func.max(t.schema_version.c.version))).scalar()
            conn.rollback()
            return int(v or 0)

    def migrate(self) -> int:
        """Apply pending migrations in order, each in its own transaction; return the version."""
        with self._migrate_lock, self.engine.connect() as conn:
            with transaction(conn, write=True):
                if self.dialect == "postgresql":
                    # Two replicas starting at once must not both migrate.
                    # Marked: SQL keywords and function names ignore case.
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(724011)")  # pragma: no mutate
                self._migrate(conn)
        return t.LATEST_VERSION

    @staticmethod
    def _migrate(conn: Connection) -> None:
        t.schema_version.create(conn, checkfirst=True)
        done = {r[0] for r in conn.execute(sa.select(t.schema_version.c.version))}
        for version, name, apply in t.MIGRATIONS:
            if version in done:
                continue
            apply(conn)
            conn.execute(t.schema_version.insert().values(version=version, name=name, applied_at=utcnow()))
        if conn.execute(sa.select(t.audit_head.c.id)).first() is None:
            # The id left out or None is the same on SQLite (an INTEGER PRIMARY KEY takes the next rowid: 1
            # in this empty table); on PostgreSQL it fails (NOT NULL, no sequence), which its tests show.
            conn.execute(t.audit_head.insert().values(id=1, seq=0, hash=GENESIS_HASH))  # pragma: no mutate

    @contextmanager
    def write(self, reads: Reads | None = None) -> Iterator[Transaction]:
        """A serialised read-write transaction; committed on success, rolled back on any error.

        ``reads``: what the transaction will read first of one request (its
        row, votes, warrant, events). On PostgreSQL they are read right after
        the chain head is locked, in the same round trip as the lock
        (psycopg's pipeline: the server still runs them one after the other,
        each with a snapshot taken as it starts, after the lock), and they
        answer the first :class:`Transaction` call that asks for each, as
        long as the transaction has sent or appended nothing else first;
        they are decoded by that call. On SQLite, whose statements cost no
        round trip, each call queries as it always did.
        """
        if self.read_only_reason is not None:
            raise StorageError(
                f"the state store {_redact(self.url)} is read-only: {self.read_only_reason}. This command "
                "writes to it; run it where the store is writable (reading commands such as `requests`, "
                "`show`, `audit verify` and `audit export` work on a read-only copy)",
                code="read_only",
            )
        tx: Transaction | None = None
        # The seq of the event the write will compare with the audit anchor, read before the lock (what is
        # compared is read again under it: Transaction.event_hash answers only for this seq). On SQLite BEGIN
        # IMMEDIATE takes the lock before the transaction's snapshot, so the hash comes in the locking statement.
        # On PostgreSQL (READ COMMITTED) a statement's snapshot is taken before it waits for the row lock: FOR
        # UPDATE then returns the newest head, but a subquery in the same statement still reads from before the
        # wait, and would miss a chain cut committed by the writer it waited for. There the hash is read by a
        # statement of its own, after the lock (a snapshot taken after the wait), in the same round trip.
        seq = self.anchored_seq() if self.anchored_seq is not None else None
        try:
            with self.engine.connect() as conn:
                # Marks the writer for whoever observes the connection (tests' begin listeners); the BEGIN is
                # transaction()'s.
                conn.execution_options(hitlgate_write=True)
                dialect = conn.dialect.name
                with transaction(conn, write=True):
                    # Lock the chain head first in every write, so writers
                    # queue in one order and never deadlock.
                    # The locked row is also where this transaction's first
                    # event links to.
                    first: list[tuple[Prepared, dict[str, Any] | None]]
                    if dialect == "sqlite":
                        first = [(_LOCK_HEAD, None) if seq is None else (_LOCK_HEAD_AND_HASH, {"seq": seq})]
                    else:
                        first = [(_LOCK_HEAD, None)] + ([] if seq is None else [(_EVENT_HASH, {"seq": seq})])
                    # Only where they save round trips: SQLite's statements are calls inside this process, and
                    # read early, a read the body turns out not to need would only lengthen the lock.
                    planned = [] if reads is None or dialect == "sqlite" else reads.statements()
                    answers = execute_together(conn, first + [(statement, params) for _, statement, params in planned])
                    head = answers[0].rows().first()
                    if head is None:
                        raise StorageError(f"the state store {_redact(self.url)} has no audit chain head row")
                    known: tuple[int, str | None] | None = None
                    if seq is not None:
                        found = head[2] if dialect == "sqlite" else (answers[1].rows().first() or (None,))[0]
                        known = (seq, None if found is None else str(found))
                    tx = Transaction(conn, writable=True, head=(int(head[0]), str(head[1])), event_hash=known)
                    tx._prefetched.update(
                        (key, rows) for (key, _, _), rows in zip(planned, answers[len(first):], strict=True))
                    yield tx
                    tx._store_head()
        except SQLAlchemyError as exc:
            raise StorageError(f"state store {_redact(self.url)}: {_db_message(exc)}") from exc
        # Committed: run what waited for the commit (e.g. anchoring checkpoints).
        for callback in tx._after_commit if tx is not None else ():
            callback()

    @contextmanager
    def read(self, *, snapshot: bool = False, one_statement: bool = False) -> Iterator[Transaction]:
        """A read-only transaction.

        With ``snapshot`` every statement sees the same snapshot, also on
        PostgreSQL (``REPEATABLE READ``; its default gives each statement
        its own): for reads made of many statements, such as ``audit
        verify`` streaming the chain in chunks and then the tables, which a
        concurrent commit must not make disagree. SQLite's read transaction
        is one snapshot already.

        ``one_statement`` is for a read that PostgreSQL answers with one
        statement (a listing page with its votes): that statement is its own
        snapshot, so it runs without the BEGIN and COMMIT round trips. SQLite
        still opens its (local, cheap) read transaction.
        """
        try:
            with self.engine.connect() as conn:
                if snapshot and self.dialect == "postgresql":
                    conn.execution_options(isolation_level="REPEATABLE READ")
                # PostgreSQL only (the mutation run leaves it out): a listing there is one statement, its own
                # snapshot; tests/workflow's postgres listing tests run through it.
                elif one_statement and self.dialect == "postgresql":  # pragma: no mutate
                    conn.execution_options(isolation_level="AUTOCOMMIT")  # pragma: no mutate
                with transaction(conn, write=False):
                    yield Transaction(conn, writable=False)
        except SQLAlchemyError as exc:
            raise StorageError(f"state store {_redact(self.url)}: {_db_message(exc)}") from exc

    def read_first(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The first row (``sa.Row``) of one read-only statement, or None (a hot-path read: an API key by id).

        One statement is one snapshot by itself, so it runs without the
        BEGIN and COMMIT round trips of :meth:`read` (SQLite: the driver's
        implicit transaction; PostgreSQL: autocommit).
        """
        return self._alone(lambda conn: conn.execute(statement, params).first())

    def _alone(self, run: Callable[[Connection], Any]) -> Any:
        """``run(conn)`` on a connection whose one statement is its own transaction (see :meth:`read_first`)."""
        try:
            with self.engine.connect() as conn:
                # SQLite: no BEGIN is sent (see transaction()), so the driver runs the statement in its own
                # implicit transaction. PostgreSQL only (outside the mutation run): spares the driver's BEGIN and
                # COMMIT round trips; the row read is the same either way.
                if self.dialect == "postgresql":  # pragma: no mutate
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # pragma: no mutate
                return run(conn)
        except SQLAlchemyError as exc:
            raise StorageError(f"state store {_redact(self.url)}: {_db_message(exc)}") from exc

    def peek_request(self, request_id: str) -> tuple[Request, WarrantRecord | None]:
        """A request (without its votes) and its warrant with its consumption, read by one statement.

        For the checks made before a write transaction re-checks everything
        under its lock (the guard's consumption, the warrant path): one
        indexed statement, its own snapshot, with no BEGIN and COMMIT.
        Raises :class:`NotFoundError` (code ``not_found``) when there is no
        such request, and :class:`StorageError` when it cannot be read; a
        row that was read but is corrupted is :func:`decode_peeked`'s.
        """
        return decode_peeked(self.peek_row(request_id))

    def peek_row(self, request_id: str) -> Mapping[str, Any]:
        """:meth:`peek_request`'s row as read, for :func:`decode_peeked` (a caller that tells a corrupted
        row from a store it cannot read)."""
        row = self._alone(lambda conn: _PEEK_REQUEST.execute(conn, {"rid": request_id}, alone=True).mappings().first())
        if row is None:
            raise NotFoundError(f"no request with id {shorten(request_id, 60)!r}")
        return cast(Mapping[str, Any], row)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def _db_message(exc: SQLAlchemyError) -> str:
    """The database's own message, without SQLAlchemy's statement dump and background link."""
    text = str(getattr(exc, "orig", None) or exc).split("\n(Background on this error")[0].strip()
    if "readonly database" in text:
        text += " (the database file or its directory is not writable by this process)"
    elif text == "database is locked":
        text += (f" (another process held the store's write lock longer than the {SQLITE_BUSY_TIMEOUT_MS / 1000:g} s"
                 " this one waits for it; try again once it is done)")
    elif "unable to open database file" in text:
        text += " (the file or its directory is missing or not accessible by this process)"
    return text


#: Query parameters libpq takes a secret from (``?password=...``): hidden like the userinfo password.
_SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})


def _redact(url: str) -> str:
    try:
        parsed = sa.engine.make_url(url)
        query = {k: ("***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in parsed.query.items()}
        return parsed.set(query=query).render_as_string(hide_password=True).replace("=%2A%2A%2A", "=***")
    except Exception:  # noqa: BLE001 - a malformed URL is reported as it is, minus nothing secret.
        return "<unparseable url>"

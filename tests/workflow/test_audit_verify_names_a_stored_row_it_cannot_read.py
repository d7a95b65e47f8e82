"""Tampering that leaves an audit row unreadable is a broken chain naming the row, not a storage failure.

Someone with database access writes an event's time in another spelling,
its payload as text that is not JSON, an unknown kind or a malformed hash,
or a checkpoint's time that is not a time. ``audit verify`` (full and
incremental) and ``audit export`` report an :class:`AuditChainError`
(``audit_chain_broken``, exit 3) naming the seq and the column, as they do
for any other edit; before, a time or payload made the whole command a
storage error (exit 1) that named neither. The guard refuses a warrant
whose issue event can no longer be read (``audit_chain_broken``), as it
refuses one the chain does not show. Real SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import re
import sqlite3
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.audit import GENESIS_HASH, AuditEvent
from hitlgate.engine.notify.dispatcher import _past_stale
from hitlgate.errors import AuditChainError, InvalidWarrant, ValidationError
from tests.workflow._helpers import granted_warrant, proposal

EVENT_EDITS: dict[str, tuple[dict[str, Any], str]] = {
    "at-another-spelling": ({"at": "2026-11-27 10:00:00"}, "at: '2026-11-27 10:00:00' is not an RFC 3339 UTC time"),
    "at-not-a-time": ({"at": "yesterday"}, "at: 'yesterday' is not an RFC 3339 UTC time"),
    "payload-not-json": ({"payload": "{not json"}, "payload: not JSON"),
    "payload-an-array": ({"payload": "[1, 2]"}, "payload: must be an object"),
    "kind-unknown": ({"kind": "erased"}, "kind: 'erased' is not one of"),
    "hash-malformed": ({"hash": "md5:00"}, "hash: must be sha256: followed by 64 lowercase hex digits"),
}


@pytest.fixture
def history(engine: Engine) -> Engine:
    """Events 1-2 (a pending request) under a checkpoint at 2, then events 3-4 (another) uncovered."""
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert engine.checkpoint().seq == 2
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    return engine


def _edit_event(engine: Engine, seq: int, values: dict[str, Any]) -> None:
    with engine.store.engine.begin() as conn:
        conn.execute(sa.update(t.audit_events).where(t.audit_events.c.seq == seq)
                     .values(**{k: sa.literal(v, sa.String) for k, v in values.items()}))


@pytest.mark.parametrize("seq", [1, 3], ids=["under-a-checkpoint", "in-the-uncovered-tail"])
@pytest.mark.parametrize("edit", list(EVENT_EDITS), ids=list(EVENT_EDITS))
def test_verify_names_an_event_it_cannot_read(history: Engine, edit: str, seq: int) -> None:
    values, why = EVENT_EDITS[edit]
    _edit_event(history, seq, values)
    message = re.escape(f"audit event {seq} is stored corrupted: {why}")
    with pytest.raises(AuditChainError, match=message) as caught:
        history.verify_audit()
    assert caught.value.code == "audit_chain_broken"
    with pytest.raises(AuditChainError, match=message):
        history.export_audit(io.StringIO())


def test_incremental_verify_names_an_event_past_the_mark(history: Engine) -> None:
    history.verify_audit()  # Leaves the verified mark at the checkpoint (seq 2).
    _edit_event(history, 3, {"at": "2026-11-27T10:00:00Z"})
    with pytest.raises(AuditChainError, match=re.escape("audit event 3 is stored corrupted: at: ")):
        history.verify_audit(incremental=True)


def test_verify_names_a_checkpoint_whose_time_is_not_a_time(history: Engine) -> None:
    with history.store.engine.begin() as conn:
        conn.execute(sa.update(t.checkpoints).where(t.checkpoints.c.seq == 2).values(at=sa.literal("soon", sa.String)))
    with pytest.raises(AuditChainError, match=re.escape("audit checkpoint 2 is stored corrupted: at: 'soon' is not")):
        history.verify_audit()


def test_guard_refuses_a_warrant_whose_issue_event_cannot_be_read(make_engine: Any) -> None:
    engine: Engine = make_engine(demo=True)
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(engine, doc, ("carol",))
    (issued,) = [e for e in engine.audit_events(req.id) if e.kind == "warrant_issued"]
    _edit_event(engine, issued.seq, {"at": "now"})
    ran: list[object] = []
    message = f"invalid warrant: audit event {issued.seq} is stored corrupted: at: 'now' is not"
    with pytest.raises(InvalidWarrant, match="^" + re.escape(message)) as err:
        engine.guard().execute(token, doc["action"], ran.append)
    assert not ran
    assert err.value.code == "audit_chain_broken"
    with engine.store.read() as tx:
        assert tx.warrant_for(req.id).consumed_at is None  # Nothing was consumed.


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # A PostgreSQL BIGINT holds only integers.
@pytest.mark.parametrize(("value", "shown"),
                         [("4x", "'4x'"), (4.5, "4.5"), (float("inf"), "inf"), (b"\x04", "b'\\x04'")],
                         ids=["text", "real", "infinite", "blob"])
def test_a_seq_that_is_not_an_integer_is_named(history: Engine, db_url: str, value: object, shown: str) -> None:
    # SQLite keeps whatever type a writer around the engine puts in a column; the head event (seq 4) is edited.
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as raw:
        raw.execute("UPDATE audit_events SET seq = ? WHERE seq = 4", (value,))
    message = f"audit event {shown} is stored corrupted: seq: {shown} is not an integer"
    with pytest.raises(AuditChainError, match="^" + re.escape(message)):
        history.verify_audit()
    with pytest.raises(AuditChainError, match="^" + re.escape(message)):
        history.export_audit(io.StringIO())
    with history.store.read() as tx, pytest.raises(AuditChainError, match="^" + re.escape(message)):
        tx.event_times(after_seq=0, limit=10)


def test_the_dispatcher_s_backlog_read_names_an_event_it_cannot_read(history: Engine) -> None:
    _edit_event(history, 2, {"at": "later"})
    with history.store.read() as tx, pytest.raises(
        AuditChainError, match="^" + re.escape("audit event 2 is stored corrupted: at: 'later' is not")
    ):
        _past_stale(tx, 0, datetime(2100, 1, 1, tzinfo=UTC))
    with history.store.read() as tx:
        assert [seq for seq, _at, _kind in tx.event_times(after_seq=2, limit=10)] == [3, 4]


def test_a_payload_nested_past_the_interpreter_s_stack_is_a_validation_error() -> None:
    # Deeper than the stack: canonicalising it raises RecursionError, which is reported as the payload's
    # problem (a stored row then reads as "stored corrupted"), never escaping as an internal error.
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(sys.getrecursionlimit() + 100):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ValidationError, match="payload: not canonical JSON: maximum recursion depth"):
        AuditEvent(1, datetime(2026, 11, 27, tzinfo=UTC), "proposed", None, deep, GENESIS_HASH, GENESIS_HASH)

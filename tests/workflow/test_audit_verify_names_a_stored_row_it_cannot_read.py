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
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import AuditChainError, InvalidWarrant
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

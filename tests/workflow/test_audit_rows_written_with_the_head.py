"""A write transaction holds its audit rows back and writes them as it ends, with the chain head.

``Transaction.append`` and ``insert_checkpoint`` keep their rows and the
transaction writes them at its end: on PostgreSQL in one statement with the
head's update (a data-modifying ``WITH``), on SQLite in one INSERT per
table. Whatever asks the transaction for its connection gets it only once
the held rows are in their tables, so nothing the transaction reads misses
them, and an error writing them is the store's (``StorageError``), never
mistaken for a refusal of the statement that asked (a second vote). Real
SQLite and PostgreSQL, real signatures; nothing is mocked.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.audit import sign_checkpoint
from hitlgate.errors import ApprovalError, StorageError
from tests.workflow._helpers import proposal, signed, statements, vote
from tests.workflow.conftest import EngineFactory

#: A statement that writes audit rows or moves the chain head.
_AUDIT_WRITE = re.compile(r"INSERT INTO audit_events|INSERT INTO audit_checkpoints|UPDATE audit_head")


def _flow(engine: Engine) -> None:
    """One single-approval flow: propose, carol approves, warrant, the guard runs it."""
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req = engine.propose(doc)
    vote(engine, req, "carol")
    token = engine.warrant(req.id).token
    engine.guard().execute(token, doc["action"], lambda _action: None)


def _counts(engine: Engine) -> tuple[int, int, tuple[Any, ...]]:
    with engine.store.engine.connect() as c:
        return (c.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one(),
                c.execute(sa.text("SELECT count(*) FROM requests")).scalar_one(),
                tuple(c.execute(sa.text("SELECT seq, hash FROM audit_head")).one()))


def _plant_event(engine: Engine, seq: int) -> None:
    """What a database writer does: an event row at ``seq``, ahead of the chain head."""
    with engine.store.engine.begin() as c:
        c.execute(sa.text("INSERT INTO audit_events (seq, at, kind, request_id, payload, prev_hash, hash) "
                          "VALUES (:s, '2026-01-01T00:00:00Z', 'checkpoint', NULL, '{}', :h, :h)"),
                  {"s": seq, "h": "sha256:" + "0" * 64})


def test_each_write_sends_its_audit_rows_together_with_the_head(make_engine: EngineFactory) -> None:
    engine = make_engine()
    _flow(engine)  # Warm: the first flow also creates the anchor and notes the keyring.
    with statements(engine) as sent:
        _flow(engine)
    audit = [s for s in sent if _AUDIT_WRITE.search(s)]
    events = [s for s in audit if "INSERT INTO audit_events" in s]
    # Five write transactions (propose, approve, warrant, consume, outcome), one INSERT of events each: the
    # proposal's two events and the approval's two go in one statement (seven events in all).
    assert len(events) == 5
    assert [len(re.findall(r"\(\s*(?:\?|%\(e\d+_seq\)s)", s)) for s in events] == [2, 2, 1, 1, 1]
    if engine.store.dialect == "postgresql":
        # The events, the checkpoint of a warrant or a consumption, and the head: one statement per write.
        assert audit == events
        assert all(s.startswith("WITH held_0 AS (INSERT INTO audit_events") and "UPDATE audit_head" in s
                   for s in audit)
        assert ["INSERT INTO audit_checkpoints" in s for s in audit] == [False, False, True, True, False]
    else:
        assert sum("UPDATE audit_head" in s for s in audit) == 5
        assert sum("INSERT INTO audit_checkpoints" in s for s in audit) == 2
    engine.verify_audit()


def test_a_read_after_an_append_sees_the_held_events_and_a_rollback_drops_them(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    before = _counts(engine)
    now = engine.now()
    with pytest.raises(RuntimeError, match="roll back"), engine.store.write() as tx:
        first = tx.append("checkpoint", request_id=None, payload={"n": 1}, at=now)
        second = tx.append("checkpoint", request_id=None, payload={"n": 2}, at=now)
        head = tx.head()
        assert head is not None and (head.seq, head.hash) == (second.seq, second.hash)
        assert tx.event_hash(first.seq) == first.hash
        assert [e.seq for e in tx.events()][-2:] == [first.seq, second.seq]
        third = tx.append("checkpoint", request_id=None, payload={"n": 3}, at=now)
        # Any use of the connection writes what is held first, a raw one included.
        assert tx.conn.execute(sa.text("SELECT max(seq) FROM audit_events")).scalar_one() == third.seq
        raise RuntimeError("roll back")
    assert _counts(engine) == before
    engine.verify_audit()


def test_more_held_rows_than_one_statement_takes(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    now = engine.now()
    with statements(engine) as sent, engine.store.write() as tx:
        evs = [tx.append("checkpoint", request_id=None, payload={"n": i}, at=now) for i in range(21)]
        cps = [sign_checkpoint(engine.audit_log.keyring, ev, now) for ev in evs[1::2]]
        for cp in cps:
            tx.insert_checkpoint(cp)
        tx.insert_checkpoint(cps[-1])  # Stored once: a checkpoint already there is left alone.
    engine.anchor.append(cps)
    assert [e.seq for e in engine.audit_events()] == list(range(1, 24))
    report = engine.verify_audit()
    assert (report.events, report.checkpoints, report.head_seq) == (23, 10, 23)
    inserts = [s for s in sent if "INSERT INTO audit_events" in s]
    # 21 events in statements of at most 8 rows; the last with the checkpoints and the head on PostgreSQL.
    assert len(inserts) == 3
    if engine.store.dialect == "postgresql":
        assert "UPDATE audit_head" in inserts[-1] and "INSERT INTO audit_checkpoints" in inserts[-1]


def test_a_held_row_that_cannot_be_written_refuses_the_whole_write(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    head_seq = _counts(engine)[2][0]
    # The proposal's second event would take head + 2, where a writer put a row of its own.
    _plant_event(engine, head_seq + 2)
    before = _counts(engine)
    with pytest.raises(StorageError, match="audit chain could not be written"):
        engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    # Nothing of the refused proposal stays: not its request, not its first event, not a moved head.
    assert _counts(engine) == before


def test_a_held_row_error_is_not_taken_for_a_second_vote(make_engine: EngineFactory) -> None:
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    _plant_event(engine, _counts(engine)[2][0] + 1)
    statement = signed(req, "carol", at=engine.now())
    with pytest.raises(StorageError, match="audit chain could not be written") as refused, \
            engine.store.write() as tx:
        tx.append("checkpoint", request_id=None, payload={}, at=engine.now())
        # The vote's INSERT asks for the connection, which writes the held event first: that fails, and
        # must not read as "carol has already voted".
        tx.insert_vote(request_id=req.id, approver="carol", verdict="approve", statement=statement.to_dict(),
                       signed_at=engine.now(), recorded_at=engine.now())
    assert not isinstance(refused.value, ApprovalError)
    assert engine.get(req.id).approvals == ()


def test_a_write_whose_held_rows_failed_never_commits_even_if_the_error_was_caught(make_engine: EngineFactory) -> None:
    """The held rows are dropped when their write fails and the head is past them: a body that catches the
    error and goes on must not commit (SQLite keeps the transaction open after a failed statement), or the
    head would name an event never stored and the consumption would stand without its audit event."""
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    vote(engine, req, "carol")
    engine.warrant(req.id)
    head_seq = _counts(engine)[2][0]
    _plant_event(engine, head_seq + 2)
    before = _counts(engine)
    with pytest.raises(StorageError, match="audit chain could not be written"), engine.store.write() as tx:
        warrant = tx.warrant_for(req.id)
        assert warrant is not None
        tx.consume(jti=warrant.jti, request_id=req.id, now=engine.now())
        tx.append("consumed", request_id=req.id, payload={"jti": warrant.jti}, at=engine.now())
        tx.append("checkpoint", request_id=None, payload={}, at=engine.now())
        with pytest.raises(StorageError, match="audit chain could not be written"):
            tx.request_events(req.id, ("consumed",))
        # Caught: the transaction goes on, and its end must refuse it all the same.
    assert _counts(engine) == before
    with engine.store.read() as rtx:
        assert not rtx.is_consumed(warrant.jti)

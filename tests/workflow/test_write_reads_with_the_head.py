"""A write reads what it needs of its request right after it locks the chain head (``Store.write(reads)``).

The vote, the warrant, the guard's consumption and the outcome each name
their request up front. On PostgreSQL the store reads its row (and votes),
its warrant and its events as the transaction begins, after the lock, in the
same round trip as the lock (one psycopg pipeline). Each answer serves the
first call that asks for it, and only while the transaction has sent and
appended nothing else: a later read, or one after the transaction's own
change, is queried as before. Each is decoded by the call that uses it, so
a corrupted value raises where it always did. A read sent in the pipeline
still runs after the lock was granted, so it sees what the writer it waited
for committed. On SQLite, where a statement is a call inside the process,
every call queries as before: the same tests hold there with no answer kept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.audit import sign_checkpoint
from hitlgate.engine.ledger.store import Reads
from hitlgate.errors import InvalidWarrant, StorageError
from tests.workflow._helpers import at_write_begin, granted_warrant, proposal, signed, statements, vote

DOC = proposal("suspend_service_account", "svc-ci-runner")
EVENTS = ("granted", "warrant_issued")


def test_the_first_reads_are_answered_without_a_statement_and_equal_a_query(make_engine: Any) -> None:
    engine: Engine = make_engine()
    req, _token = granted_warrant(engine, DOC, ("carol",))
    with engine.store.write() as plain:
        queried = (plain.get_request(req.id), plain.warrant_for(req.id), plain.request_events(req.id, EVENTS))
    with statements(engine) as sent, engine.store.write(Reads(req.id, warrant=True, events=EVENTS)) as tx:
        began = len(sent)
        answered = (tx.get_request(req.id), tx.warrant_for(req.id), tx.request_events(req.id, EVENTS))
        # Answered from the first round trip on PostgreSQL; queried by each call on SQLite.
        assert (sent[began:] == []) == (engine.store.dialect == "postgresql"), sent[began:]
    assert answered == queried
    assert answered[0].approvals and answered[1] is not None and [e.kind for e in answered[2]] == list(EVENTS)


def test_each_answer_serves_one_call_and_a_second_is_queried(make_engine: Any) -> None:
    engine: Engine = make_engine()
    req = engine.propose(DOC)
    with statements(engine) as sent, engine.store.write(Reads(req.id)) as tx:
        first = tx.get_request(req.id)
        began = len(sent)
        again = tx.get_request(req.id)
        assert len(sent) > began
    assert first == again


def test_a_read_after_the_transactions_own_change_sees_the_change(make_engine: Any) -> None:
    engine: Engine = make_engine()
    req = engine.propose(DOC)
    statement = signed(req, "carol", at=engine.now())
    with pytest.raises(RuntimeError, match="rolled back"), engine.store.write(Reads(req.id)) as tx:
        tx.insert_vote(request_id=req.id, approver="carol", verdict="approve", statement=statement.to_dict(),
                       signed_at=engine.now(), recorded_at=engine.now())
        assert [v.approver for v in tx.get_request(req.id).approvals] == ["carol"]
        raise RuntimeError("rolled back: the vote was for this test only")


def test_a_move_from_a_request_read_elsewhere_is_seen_by_the_next_read(make_engine: Any) -> None:
    """``transition(current=...)`` with the request as read outside the transaction (as the warrant path peeks
    it before the lock): the answer kept from the first round trip is stale after the move and is not used."""
    engine: Engine = make_engine()
    req = engine.propose(DOC)
    peeked, _warrant = engine.store.peek_request(req.id)
    for votes in (True, False):
        with pytest.raises(RuntimeError, match="rolled back"), engine.store.write(Reads(req.id, votes=votes)) as tx:
            tx.transition(req.id, "revoked", now=engine.now(), reason="by the test", current=peeked)
            assert tx.get_request(req.id, votes=votes).status == "revoked"
            raise RuntimeError("rolled back: the move was for this test only")


def test_a_corrupted_warrant_time_raises_where_the_warrant_is_read_not_as_the_write_begins(make_engine: Any) -> None:
    engine: Engine = make_engine()
    req, _token = granted_warrant(engine, DOC, ("carol",))
    with engine.store.write() as tx:
        tx.conn.execute(sa.text("UPDATE warrants SET issued_at = 'garbage' WHERE request_id = :rid"), {"rid": req.id})
    with engine.store.write(Reads(req.id, warrant=True)) as tx:
        assert tx.get_request(req.id).status == "granted"
        with pytest.raises(StorageError, match="corrupted time"):
            tx.warrant_for(req.id)


def test_a_consumption_with_its_request_corrupted_is_refused_and_recorded(make_engine: Any) -> None:
    """The request's proposal and its warrant's time corrupted between the guard's look and its write: the
    request is read first, refused as the warrant's problem, and the refusal recorded (the warrant's time is
    never decoded)."""
    engine: Engine = make_engine()
    req, token = granted_warrant(engine, DOC, ("carol",))

    def corrupt(conn: Any) -> None:
        conn.execute(sa.text("UPDATE requests SET proposal = '{' WHERE id = :rid"), {"rid": req.id})
        conn.execute(sa.text("UPDATE warrants SET issued_at = 'garbage' WHERE request_id = :rid"), {"rid": req.id})

    fired = at_write_begin(engine, corrupt)
    with pytest.raises(InvalidWarrant, match=f"request {req.id}"):
        engine.guard().consume(token, DOC["action"])
    assert fired == [True]
    refused = [e for e in engine.audit_events() if e.kind == "warrant_refused"]
    assert len(refused) == 1 and req.id in refused[0].payload["reason"]


def test_a_transition_in_the_transaction_is_seen_by_the_next_read(make_engine: Any) -> None:
    engine: Engine = make_engine()
    req = engine.propose(DOC)
    with pytest.raises(RuntimeError, match="rolled back"), \
            engine.store.write(Reads(req.id, warrant=True, events=("revoked",))) as tx:
        tx.transition(req.id, "revoked", now=engine.now(), reason="by the test")
        assert tx.get_request(req.id).status == "revoked"
        raise RuntimeError("rolled back: the move was for this test only")


def test_an_event_appended_in_the_transaction_is_seen_by_the_next_read_of_the_events(make_engine: Any) -> None:
    engine: Engine = make_engine()
    req = engine.propose(DOC)
    with pytest.raises(RuntimeError, match="rolled back"), \
            engine.store.write(Reads(req.id, events=("revoked",))) as tx:
        tx.append("revoked", request_id=req.id, payload={"by": "test"}, at=engine.now())
        assert [e.kind for e in tx.request_events(req.id, ("revoked",))] == ["revoked"]
        raise RuntimeError("rolled back: the event was for this test only")


def test_a_checkpoint_stored_in_the_transaction_drops_the_answers(make_engine: Any) -> None:
    engine: Engine = make_engine()
    req = engine.propose(DOC)
    cp = sign_checkpoint(engine.audit_log.keyring, engine.audit_events()[-1], engine.now())
    with pytest.raises(RuntimeError, match="rolled back"), statements(engine) as sent, \
            engine.store.write(Reads(req.id)) as tx:
        tx.insert_checkpoint(cp)
        began = len(sent)
        tx.get_request(req.id)
        assert len(sent) > began
        raise RuntimeError("rolled back: the checkpoint was for this test only")


def test_a_vote_and_a_consumption_send_no_read_of_their_request_after_the_lock(make_engine: Any) -> None:
    engine: Engine = make_engine()
    req = engine.propose(DOC)
    request_reads = ("SELECT requests.id", "SELECT warrants.jti", "SELECT audit_events.seq")
    with _body_statements(engine) as body:
        vote(engine, req, "carol")
        token = engine.warrant(req.id).token
        engine.guard().execute(token, DOC["action"], lambda _a: None)
    # Reads of the request inside a write's body (after its first round trip): on PostgreSQL none for the vote,
    # the warrant, the consumption and the outcome; on SQLite the calls query as before (the request read by
    # the vote, the warrant and the consumption, the warrant by those two and the outcome, and the events).
    read_in_body = [s.split(",")[0] for s in body if s.startswith(request_reads)]
    if engine.store.dialect == "postgresql":
        assert read_in_body == [], body
    else:
        assert sorted(read_in_body) == sorted(["SELECT requests.id"] * 4 + ["SELECT warrants.jti"] * 3
                                              + ["SELECT audit_events.seq"] * 2), read_in_body


@contextmanager
def _body_statements(engine: Engine) -> Iterator[list[str]]:
    """The statements each write transaction sends after its first round trip (the lock and its reads)."""
    body: list[str] = []
    real_write = engine.store.write

    @contextmanager
    def write(reads: Reads | None = None) -> Iterator[Any]:
        with statements(engine) as sent, real_write(reads) as tx:
            began = len(sent)
            yield tx
            body.extend(sent[began:])

    engine.store.write = write  # type: ignore[method-assign]
    try:
        yield body
    finally:
        del engine.store.write


def test_on_postgresql_the_lock_the_anchored_hash_and_the_reads_go_in_one_round_trip(make_engine: Any) -> None:
    engine: Engine = make_engine()
    req, _token = granted_warrant(engine, DOC, ("carol",))  # The warrant's checkpoint is anchored.
    pipelines: list[list[str]] = []
    real_pipeline = psycopg.Connection.pipeline

    @contextmanager
    def recording(self: psycopg.Connection[Any]) -> Iterator[Any]:
        with statements(engine) as sent, real_pipeline(self) as p:
            yield p
        pipelines.append(sent)

    psycopg.Connection.pipeline = recording  # type: ignore[assignment,method-assign]
    try:
        with engine.store.write(Reads(req.id, warrant=True, events=EVENTS)) as tx:
            tx.get_request(req.id)
    finally:
        psycopg.Connection.pipeline = real_pipeline  # type: ignore[method-assign]
    if engine.store.dialect == "sqlite":
        # SQLite's statements are calls inside this process: they are sent one by one, no pipeline.
        assert pipelines == []
        return
    (sent,) = pipelines
    assert sent[0].startswith("SELECT audit_head.seq, audit_head.hash FROM audit_head") and "FOR UPDATE" in sent[0]
    assert sent[1].startswith("SELECT audit_events.hash FROM audit_events WHERE audit_events.seq =")
    assert [s.split(",")[0] for s in sent[2:]] == ["SELECT requests.id", "SELECT warrants.jti",
                                                   "SELECT audit_events.seq"]


def test_a_read_with_the_lock_sees_what_the_writer_it_waited_for_committed(make_engine: Any) -> None:
    """The reads run after the lock is granted (on PostgreSQL each statement of the pipeline takes its snapshot
    as it starts), so a request changed by the writer that held the lock is read as that writer left it."""
    engine: Engine = make_engine()
    req = engine.propose(DOC)
    holding = threading.Event()
    failed: list[BaseException] = []

    def other_writer() -> None:
        try:
            with engine.store.write() as tx:
                tx.transition(req.id, "revoked", now=engine.now(), reason="revoked while the vote waited")
                holding.set()
                time.sleep(0.5)
        except BaseException as exc:  # noqa: BLE001 - reported to the test.
            failed.append(exc)
            holding.set()

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert holding.wait(30)
    started = time.monotonic()
    with engine.store.write(Reads(req.id)) as tx:
        waited = time.monotonic() - started
        seen = tx.get_request(req.id)
    thread.join(30)
    assert failed == []
    assert waited > 0.3  # It did wait for the other writer's lock.
    assert (seen.status, seen.status_reason) == ("revoked", "revoked while the vote waited")


def test_a_driver_that_cannot_pipeline_sends_the_same_statements_one_by_one(make_engine: Any,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """psycopg built on a libpq older than 14 has ``Connection.pipeline`` but refuses to enter it: the writes
    must still work there, with the lock and its reads sent one after the other."""
    from hitlgate.engine.ledger import _fastsql

    monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda _cls: False))
    _fastsql._pipelines.cache_clear()
    entered: list[bool] = []
    real_pipeline = psycopg.Connection.pipeline

    def refusing(self: psycopg.Connection[Any]) -> Any:
        entered.append(True)
        raise psycopg.NotSupportedError("libpq too old for pipeline mode")

    monkeypatch.setattr(psycopg.Connection, "pipeline", refusing)
    try:
        engine: Engine = make_engine()
        req, token = granted_warrant(engine, DOC, ("carol",))
        engine.guard().execute(token, DOC["action"], lambda _a: None)
        assert engine.get(req.id).status == "executed"
        assert entered == []
    finally:
        monkeypatch.setattr(psycopg.Connection, "pipeline", real_pipeline)
        _fastsql._pipelines.cache_clear()

"""What the guard reports when its one-statement read, or the policy, refuses a warrant on a changed database.

``Guard.consume`` reads the request and its warrant by one statement and
asks the policy before its write transaction. On the way to a refusal it
reads the anchor and the chain as ``check()`` does, in ``check()``'s order
(the anchor, the tables, the chain, the policy), so tampering is reported as
what it is: a consumption hidden in the tables is a replay, a truncated
chain is ``chain_truncated``, even where the policy would refuse the warrant
for another reason. A corrupted request row refuses the warrant, named, and
the refusal is audited against the request. A second ``granted`` event
(appended by a database writer, who needs no key for it) gets no warrant
with a stretched lifetime. A stored time in another spelling is a
``StorageError``, never a bare ``ValueError``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.audit import next_event
from hitlgate.errors import AuditChainError, InvalidWarrant, StorageError
from tests.workflow._helpers import FakeClock, granted_warrant, proposal, vote

DOC = proposal("suspend_service_account", "svc-ci-runner")


def _sql(engine: Engine, *statements: Any) -> None:
    """Statements a database writer runs around the engine."""
    with engine.store.engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def _hide_consumption(engine: Engine, request_id: str) -> None:
    _sql(engine, sa.delete(t.consumed),
         sa.update(t.requests).where(t.requests.c.id == request_id).values(status="granted"))


def _truncate_before(engine: Engine, seq: int) -> None:
    """Delete the chain from ``seq`` on and move the head back, as a database writer hiding events would."""
    keep = [e for e in engine.audit_events() if e.seq < seq][-1]
    _sql(engine, sa.delete(t.audit_events).where(t.audit_events.c.seq >= seq),
         sa.delete(t.checkpoints).where(t.checkpoints.c.seq >= seq),
         t.audit_head.update().where(t.audit_head.c.id == 1).values(seq=keep.seq, hash=keep.hash))


def _refused(engine: Engine, token: str, match: str) -> InvalidWarrant:
    ran: list[object] = []
    with pytest.raises(InvalidWarrant, match=match) as err:
        engine.guard().execute(token, DOC["action"], ran.append)
    assert not ran
    return err.value


def _used_then_shown_where_approvals_no_longer_count(make_engine: Any) -> tuple[Engine, Engine, str, str]:
    """A warrant used in demo mode, and an engine outside demo mode on the same store, whose policy check
    refuses it (carol's demo-key approval no longer counts)."""
    demo: Engine = make_engine(demo=True)
    req, token = granted_warrant(demo, DOC, ("carol",))
    demo.guard().execute(token, DOC["action"], lambda _a: None)
    return demo, make_engine(demo=False), req.id, token


def test_a_hidden_consumption_is_a_replay_even_where_the_policy_would_refuse(make_engine: Any) -> None:
    demo, production, request_id, token = _used_then_shown_where_approvals_no_longer_count(make_engine)
    _hide_consumption(demo, request_id)
    err = _refused(production, token, r"the audit chain shows request .* consumed at event \d+ \(replay; the "
                                      r"database was changed to hide it\)$")
    assert err.code == "replay"
    refusal = production.audit_events(request_id)[-1]
    assert refusal.kind == "warrant_refused" and "database was changed" in refusal.payload["reason"]


def test_a_truncated_chain_outranks_the_policys_refusal(make_engine: Any) -> None:
    demo, production, request_id, token = _used_then_shown_where_approvals_no_longer_count(make_engine)
    (consumed,) = [e for e in demo.audit_events(request_id) if e.kind == "consumed"]
    _truncate_before(demo, consumed.seq)
    _hide_consumption(demo, request_id)
    assert _refused(production, token, "events were deleted from the end of the chain").code == "chain_truncated"


@pytest.mark.parametrize("tables", ["untouched", "consumption hidden"])
def test_a_truncated_chain_outranks_a_replay_seen_in_the_tables(engine: Engine, tables: str) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    engine.guard().execute(token, DOC["action"], lambda _a: None)
    (consumed,) = [e for e in engine.audit_events(req.id) if e.kind == "consumed"]
    _truncate_before(engine, consumed.seq)
    if tables == "consumption hidden":
        _hide_consumption(engine, req.id)
    assert _refused(engine, token, "events were deleted from the end of the chain").code == "chain_truncated"


def test_a_replay_with_the_tables_intact_is_a_replay_not_a_hidden_one(engine: Engine) -> None:
    _req, token = granted_warrant(engine, DOC, ("carol",))
    engine.guard().execute(token, DOC["action"], lambda _a: None)
    err = _refused(engine, token, r"was already used \(replay\)$")
    assert err.code == "replay" and "database was changed" not in str(err)


CORRUPTIONS = [
    pytest.param(t.requests, "proposal", "{", "is stored corrupted: Expecting property name", id="proposal"),
    pytest.param(t.requests, "decision", "[1,", "is stored corrupted: Expecting value", id="decision"),
    pytest.param(t.requests, "expires_at", "garbage", "is stored corrupted: expires_at: time data 'garbage'",
                 id="request-time"),
    pytest.param(t.warrants, "issued_at", "2026-13-01", "is stored corrupted: its warrant's issued_at: time data",
                 id="warrant-time"),
]


@pytest.mark.parametrize(("table", "column", "text", "named"), CORRUPTIONS)
def test_a_corrupted_row_refuses_the_warrant_by_name_and_the_refusal_is_audited(
    engine: Engine, table: sa.Table, column: str, text: str, named: str
) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    key = table.c.id if table is t.requests else table.c.request_id
    _sql(engine, sa.update(table).where(key == req.id).values(**{column: sa.literal(text, sa.String)}))
    before = len(engine.audit_events())
    err = _refused(engine, token, rf"^invalid warrant: request {req.id} {named}")
    assert err.code == "invalid_warrant"
    (refusal,) = engine.audit_events()[before:]
    assert refusal.kind == "warrant_refused" and refusal.request_id == req.id
    assert refusal.payload["presented_digest"] == req.action_digest
    with engine.store.read() as tx:
        assert not tx.conn.execute(sa.select(t.consumed)).all()
    # The warrant path names the corruption too (a StorageError, not a bare ValueError).
    with pytest.raises(StorageError, match=rf"^request {req.id} {named}"):
        engine.warrant(req.id)


def test_a_corrupted_consumption_time_is_named(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    engine.guard().execute(token, DOC["action"], lambda _a: None)
    _sql(engine, sa.update(t.consumed).values(consumed_at=sa.literal("garbage", sa.String)))
    with pytest.raises(StorageError, match=rf"^request {req.id} is stored corrupted: its warrant's consumed_at"):
        engine.store.peek_request(req.id)
    _refused(engine, token, rf"^invalid warrant: request {req.id} is stored corrupted: its warrant's consumed_at")


def test_a_stored_time_in_another_spelling_is_a_storage_error_on_every_read(engine: Engine) -> None:
    req = engine.propose(DOC)
    _sql(engine, sa.update(t.requests).where(t.requests.c.id == req.id)
         .values(created_at=sa.literal("yesterday", sa.String)))
    # A read of one request names it; a listing names the time (never a bare ValueError, a 500).
    with pytest.raises(StorageError, match=rf"^request {req.id} is stored corrupted: created_at: time data "
                                           "'yesterday'"):
        engine.get(req.id)
    with pytest.raises(StorageError, match="^the state store holds a corrupted time: time data 'yesterday'"):
        engine.list()


def _forge_event(engine: Engine, kind: str, request_id: str, payload: Any) -> int:
    """Append an event at the chain's tail, hash-linked, as a database writer can (no key needed); its seq."""
    head = engine.audit_events()[-1]
    forged = next_event(head, kind=kind, request_id=request_id, payload=payload, at=engine.now())
    _sql(engine,
         t.audit_events.insert().values(seq=forged.seq, at=forged.at, kind=forged.kind, request_id=request_id,
                                        payload=json.dumps(forged.payload, sort_keys=True),
                                        prev_hash=forged.prev_hash, hash=forged.hash),
         t.audit_head.update().where(t.audit_head.c.id == 1).values(seq=forged.seq, hash=forged.hash))
    return forged.seq


def test_a_second_granted_event_gets_no_warrant_and_fails_audit_verify(engine: Engine, clock: FakeClock) -> None:
    req = vote(engine, engine.propose(DOC), "carol")
    (granted,) = [e for e in engine.audit_events(req.id) if e.kind == "granted"]
    clock.advance(req.decision.warrant_ttl_seconds - 5)
    # A database writer appends a copy of the granted event, dated now, and moves the deadline out: with the
    # later grant time the warrant would live almost two lifetimes.
    seq = _forge_event(engine, "granted", req.id, granted.payload)
    _sql(engine, sa.update(t.requests).where(t.requests.c.id == req.id)
         .values(expires_at=engine.now() + timedelta(seconds=req.decision.warrant_ttl_seconds)))
    with pytest.raises(StorageError, match=rf"granted 2 times \(events {granted.seq}, {seq}\)") as err:
        engine.warrant(req.id)
    assert err.value.code == "state_contradicts_chain"
    with engine.store.read() as tx:
        assert tx.warrant_for(req.id) is None
    for incremental in (False, True):
        with pytest.raises(AuditChainError, match=rf"request {req.id} has 2 granted events \(seqs {granted.seq}, "
                                                   rf"{seq}\)") as verr:
            engine.verify_audit(incremental=incremental)
        assert verr.value.code == "state_contradicts_chain"


def test_a_second_outcome_fails_audit_verify(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    engine.guard().execute(token, DOC["action"], lambda _a: None)
    (executed,) = [e for e in engine.audit_events(req.id) if e.kind == "executed"]
    engine.verify_audit()
    seq = _forge_event(engine, "execution_failed", req.id, {**executed.payload, "status": "executed"})
    with pytest.raises(AuditChainError, match=rf"request {req.id} has 2 outcome events \(executed {executed.seq}, "
                                               rf"execution_failed {seq}\)"):
        engine.verify_audit()


def test_the_one_granted_event_dates_the_warrant(engine: Engine, clock: FakeClock) -> None:
    req = vote(engine, engine.propose(DOC), "carol")
    (granted,) = [e for e in engine.audit_events(req.id) if e.kind == "granted"]
    clock.advance(30)
    issued = engine.warrant(req.id)
    assert issued.expires_at == granted.at + timedelta(seconds=req.decision.warrant_ttl_seconds)


def test_a_consumption_committed_since_the_peek_is_a_replay_not_a_hidden_one(
    make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The warrant is used by another guard (in demo mode, where carol's approval counts) between this guard's
    # peek and its refusal; this guard's policy check refuses it (outside demo mode it does not count).
    demo: Engine = make_engine(demo=True)
    _req, token = granted_warrant(demo, DOC, ("carol",))
    production: Engine = make_engine(demo=False)
    guard = production.guard()
    peek_row = guard.store.peek_row

    def peek_then_another_guard_consumes(request_id: str) -> Any:
        row = dict(peek_row(request_id))
        demo.guard().execute(token, DOC["action"], lambda _a: None)  # Honest, on another replica.
        return row

    monkeypatch.setattr(guard.store, "peek_row", peek_then_another_guard_consumes)
    ran: list[object] = []
    with pytest.raises(InvalidWarrant, match=r"was already used \(replay\)$") as err:
        guard.execute(token, DOC["action"], ran.append)
    assert err.value.code == "replay" and not ran and "database was changed" not in str(err.value)
    demo.verify_audit()  # Nothing was tampered with.


def test_a_refusal_stands_when_the_store_fails_before_its_evidence_is_read(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    guard = engine.guard()
    guard.execute(token, DOC["action"], lambda _a: None)

    def store_down(**_kwargs: Any) -> Any:
        raise StorageError("the state store is unreachable (test)")

    before = len(engine.audit_events())
    monkeypatch.setattr(guard.store, "read", store_down)
    err = _refused_by(guard, token, r"was already used \(replay\)$")
    monkeypatch.undo()
    assert err.code == "replay"
    (refusal,) = engine.audit_events()[before:]
    assert refusal.kind == "warrant_refused" and refusal.request_id == req.id


@pytest.mark.parametrize(("column", "text", "named"), [
    ("expires_at", "garbage", "is stored corrupted: expires_at: time data 'garbage'"),
    ("proposal", "{", "is stored corrupted: Expecting property name"),
])
def test_check_and_consume_name_a_corrupted_row_alike(engine: Engine, column: str, text: str, named: str) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    _sql(engine, sa.update(t.requests).where(t.requests.c.id == req.id)
         .values(**{column: sa.literal(text, sa.String)}))
    for step in (engine.guard().check, engine.guard().consume):
        before = len(engine.audit_events())
        with pytest.raises(InvalidWarrant, match=rf"^invalid warrant: request {req.id} {named}"):
            step(token, DOC["action"])
        (refusal,) = engine.audit_events()[before:]
        assert refusal.kind == "warrant_refused" and refusal.request_id == req.id


def _refused_by(guard: Any, token: str, match: str) -> InvalidWarrant:
    ran: list[object] = []
    with pytest.raises(InvalidWarrant, match=match) as err:
        guard.execute(token, DOC["action"], ran.append)
    assert not ran
    return err.value

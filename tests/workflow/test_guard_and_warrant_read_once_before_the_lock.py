"""The guard's consumption and the warrant path read the request once, by one statement, before the write lock.

Everything that decides a consumption or an issue is checked again in the
write transaction, under the store's lock (the anchor, the tables, the
chain). What comes before it is one indexed statement, the request with its
warrant and that warrant's consumption (``Store.peek_request``), with no
read transaction around it. It is still enough to refuse a warrant already
used as a replay before the policy is asked again: a used warrant shown to
a guard whose policy check would refuse it for another reason is reported
as what it is, a replay.
"""

from __future__ import annotations

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import InvalidWarrant, NotFoundError
from tests.workflow._helpers import granted_warrant, proposal, statements, vote

DOC = proposal("suspend_service_account", "svc-ci-runner")


def _before_the_lock(sent: list[str]) -> list[str]:
    """The statements sent before the first write transaction locked the chain head (a read transaction's
    BEGIN among them)."""
    locks = [i for i, s in enumerate(sent) if s.startswith("SELECT audit_head.seq, audit_head.hash")]
    assert locks, sent
    return [s for s in sent[: locks[0]] if s != "BEGIN IMMEDIATE"]


def test_consumption_sends_one_statement_before_its_write_transaction(engine: Engine) -> None:
    _req, token = granted_warrant(engine, DOC, ("carol",))
    guard = engine.guard()
    with statements(engine) as sent:
        assert guard.execute(token, DOC["action"], lambda _a: "ran") == "ran"
    (peek,) = _before_the_lock(sent)
    assert peek.startswith("SELECT requests.id") and "consumed_warrants" in peek and "warrants" in peek


def test_warrant_issue_sends_one_statement_before_its_write_transaction(engine: Engine) -> None:
    req = vote(engine, engine.propose(DOC), "carol")
    assert req.status == "granted"
    with statements(engine) as sent:
        issued = engine.warrant(req.id)
    (peek,) = _before_the_lock(sent)
    assert peek.startswith("SELECT requests.id") and "warrants" in peek
    # The second fetch returns the same warrant.
    assert engine.warrant(req.id).jti == issued.jti


def test_a_used_warrant_is_a_replay_even_where_its_approvals_no_longer_count(make_engine) -> None:  # noqa: ANN001
    demo: Engine = make_engine(demo=True)
    req, token = granted_warrant(demo, DOC, ("carol",))
    assert demo.guard().execute(token, DOC["action"], lambda _a: "ran") == "ran"
    # Outside demo mode carol's demo-key approval no longer counts (the policy re-check would refuse the
    # warrant as approval_withdrawn), but the warrant was used: that is what the refusal says.
    production: Engine = make_engine(demo=False)
    ran: list[object] = []
    with pytest.raises(InvalidWarrant, match=r"was already used \(replay\)$") as err:
        production.guard().execute(token, DOC["action"], ran.append)
    assert err.value.code == "replay" and not ran
    refusal = production.audit_events(req.id)[-1]
    assert refusal.kind == "warrant_refused" and refusal.request_id == req.id


def test_peek_reads_the_request_and_its_warrant_as_stored(engine: Engine) -> None:
    req = engine.propose(DOC)
    peeked, warrant = engine.store.peek_request(req.id)
    assert warrant is None and peeked.id == req.id and peeked.status == "pending"
    assert (peeked.action_digest, peeked.proposal, peeked.decision) == (req.action_digest, req.proposal, req.decision)
    # Votes are not read: the request says so and refuses to list approvals.
    assert peeked.votes_read is False
    other = proposal("suspend_service_account", "svc-ci-runner", ticket="2")
    granted, token = granted_warrant(engine, other, ("carol",))
    with engine.store.read() as tx:
        stored = tx.warrant_for(granted.id)
        as_read = tx.get_request(granted.id, votes=False)
    peeked, warrant = engine.store.peek_request(granted.id)
    # Requests and warrants both have expires_at: each keeps its own (a grant's deadline, the warrant's expiry).
    assert peeked == as_read and peeked.expires_at == as_read.expires_at
    assert peeked.status == "granted" and warrant == stored and warrant.consumed_at is None
    engine.guard().execute(token, other["action"], lambda _a: None)
    peeked, warrant = engine.store.peek_request(granted.id)
    with engine.store.read() as tx:
        assert warrant == tx.warrant_for(granted.id)
    assert peeked.status == "executed" and warrant.consumed_at is not None
    with pytest.raises(NotFoundError, match="no request with id 'req-nope'"):
        engine.store.peek_request("req-nope")

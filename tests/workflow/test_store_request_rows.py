"""What the store writes for a request, and what it refuses to write or read back.

The indexed columns (requester, action type, target, tier, policy
revision) are what listings and filters read without parsing the stored
JSON: each must hold the request's own value. A request cannot start in a
state its tier does not start in, a status the lifecycle does not know is
refused when read back, and a request read without its votes refuses to
count approvals rather than count none.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.store import Transaction
from hitlgate.errors import StorageError
from tests.workflow._helpers import proposal


def test_the_indexed_columns_hold_the_requests_own_values(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with engine.store.engine.connect() as conn:
        row = conn.execute(sa.select(t.requests).where(t.requests.c.id == req.id)).mappings().one()
    assert (row["requester"], row["action_type"], row["target"]) == ("soc-agent-7", "suspend_service_account",
                                                                    "svc-ci-runner")
    assert (row["tier"], row["status"], row["policy_revision"]) == ("single_approval", "pending",
                                                                   req.decision.policy_revision)
    assert row["action_digest"] == req.action_digest and row["status_reason"] == req.decision.reasons[-1]
    again = engine.get(req.id)
    assert again.updated_at == again.created_at == req.created_at
    assert again.expires_at == req.expires_at and again.expires_at > again.created_at


def test_a_request_cannot_start_in_a_state_its_tier_does_not_start_in(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(StorageError, match="^a new single_approval request cannot start as granted$"), \
            engine.store.write() as tx:
        tx.insert_request(request_id="req-forged", status="granted", proposal=req.proposal,
                          action_digest=req.action_digest, decision=req.decision, created_at=req.created_at,
                          expires_at=req.expires_at, status_reason="")
    assert [r.id for r in engine.list()] == [req.id]


def test_a_status_the_lifecycle_does_not_know_is_refused_when_read(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with engine.store.engine.begin() as conn:
        conn.execute(sa.update(t.requests).where(t.requests.c.id == req.id).values(status="approved_by_db"))
    with pytest.raises(StorageError, match="^" + re.escape(f"request {req.id} has unknown status 'approved_by_db'")
                                           + "$"):
        engine.get(req.id)


def test_a_request_read_without_its_votes_refuses_to_count_approvals(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with engine.store.read() as tx:
        bare = tx.get_request(req.id, votes=False)
        whole = tx.get_request(req.id)
    assert whole.approvals == ()
    message = f"internal error: request {req.id} was read without its votes, which are needed here"
    with pytest.raises(StorageError, match="^" + re.escape(message) + "$"):
        _ = bare.approvals


def test_a_store_whose_chain_head_row_was_deleted_refuses_to_write(make_engine: Callable[..., Engine]) -> None:
    # Every write links its events to that row: without it, nothing is written (nothing to build on).
    engine = make_engine()
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with engine.store.engine.begin() as conn:
        conn.execute(sa.delete(t.audit_head))
    message = f"the state store {engine.store.url_for_people} has no audit chain head row"
    with pytest.raises(StorageError, match="^" + re.escape(message) + "$"):
        engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert len(engine.list()) == 1


def test_a_read_transaction_refuses_every_state_change(make_engine: Callable[..., Engine]) -> None:
    # A bug that wrote through a read transaction would write without the chain head's lock: refused outright.
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    refused = "^internal error: a state change was attempted in a read transaction$"
    with engine.store.read() as tx:
        with pytest.raises(StorageError, match=refused):
            tx.insert_request(request_id="req-x", status="pending", proposal=req.proposal,
                              action_digest=req.action_digest, decision=req.decision, created_at=req.created_at,
                              expires_at=req.expires_at, status_reason="")
        with pytest.raises(StorageError, match=refused):
            tx.append("approved", request_id=req.id, payload={}, at=req.created_at)
    assert len(engine.list()) == 1 and [e.kind for e in engine.audit_events(req.id)] == ["proposed", "decided"]


@pytest.mark.parametrize("field", ["created_at", "expires_at", "updated_at"])
def test_a_request_with_a_naive_time_is_refused_naming_the_field(
    make_engine: Callable[..., Engine], field: str
) -> None:
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    naive = getattr(req, field).replace(tzinfo=None)
    with pytest.raises(ValueError, match=f"^{field} must be timezone-aware$"):
        dataclasses.replace(req, **{field: naive})


def test_a_write_transaction_made_without_the_chain_head_refuses_to_append(make_engine: Callable[..., Engine]) -> None:
    # Store.write() always hands the locked head to the transaction; one made any other way cannot link an event.
    engine = make_engine()
    with engine.store.engine.connect() as conn:
        tx = Transaction(conn, writable=True)
        with pytest.raises(StorageError, match="^internal error: a write transaction without the chain head$"):
            tx.append("approved", request_id=None, payload={}, at=engine.now())

"""A retried proposal (same principal, same Idempotency-Key) never stores a second request."""

from __future__ import annotations

import threading

import pytest

from hitlgate.engine.ledger.store import ListFilters
from hitlgate.errors import InputError
from tests.workflow._helpers import proposal
from tests.workflow.conftest import EngineFactory


def test_retry_returns_the_first_request(make_engine: EngineFactory) -> None:
    engine = make_engine()
    first, replayed = engine.propose_once(proposal(), idempotency=("soc-agent-7", "k-1"))
    assert replayed is False
    again, replayed = engine.propose_once(proposal(), idempotency=("soc-agent-7", "k-1"))
    assert replayed is True and again.id == first.id
    # Another principal's key of the same spelling is its own key.
    other, replayed = engine.propose_once(proposal(), idempotency=("other-agent", "k-1"))
    assert replayed is False and other.id != first.id
    # The same principal's other key is a new proposal, never the first key's request.
    second, replayed = engine.propose_once(proposal(), idempotency=("soc-agent-7", "k-2"))
    assert replayed is False and second.id not in (first.id, other.id)
    with pytest.raises(InputError, match=f"already stored request {first.id} for a different proposal; "
                       "use a new key for a new proposal$") as exc:
        engine.propose_once(proposal("revoke_secret"), idempotency=("soc-agent-7", "k-1"))
    assert exc.value.code == "idempotency_conflict"
    assert len(engine.list()) == 3
    engine.verify_audit()


def test_concurrent_first_attempts_store_one_request(make_engine: EngineFactory) -> None:
    engines = [make_engine() for _ in range(4)]
    ids: list[str] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        req, _ = engines[i].propose_once(proposal(), idempotency=("soc-agent-7", "race"))
        with lock:
            ids.append(req.id)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(ids) == 4 and len(set(ids)) == 1
    assert [r.id for r in engines[0].list()] == ids[:1]


def test_listing_filters_by_tier_target_requester_and_time(make_engine: EngineFactory) -> None:
    engine = make_engine()
    auto = engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    pending = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert [r.id for r in engine.list(filters=ListFilters(tier="auto_allow"))] == [auto.id]
    assert [r.id for r in engine.list(filters=ListFilters(target="svc-ci-runner"))] == [pending.id]
    assert [r.id for r in engine.list(filters=ListFilters(requester="nobody"))] == []
    assert {r.id for r in engine.list(filters=ListFilters(requester="soc-agent-7", since=auto.created_at))} == {
        auto.id, pending.id}
    assert engine.count("pending") == 1

"""A listing page must print what reading each of its requests on its own prints.

The listing decodes a page of rows in one go (prebuilt page statements, the
page's votes and warrants by one array parameter on PostgreSQL, decisions
checked by the compiled validator), while ``show`` and the warrant path read
one request at a time with its own votes query. If the two ever disagreed
(a vote missing or attached to the wrong request, a warrant state from
another row, a decision spelled differently), ``hitlgate requests --json``
would show people something other than what is stored. This test builds one
store with requests in many states and holds the CLI's listing JSON, page by
page through the cursor, against the same JSON built from per-request reads.
Real SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

from hitlgate.cli._workflow import warrant_state
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.store import ListCursor, Request
from tests.workflow._helpers import FakeClock, proposal, vote
from tests.workflow.conftest import EngineFactory


def _listing_json(engine: Engine, reqs: list[Request]) -> str:
    """What ``hitlgate --json requests`` prints for ``reqs`` (the same two calls and the same shape)."""
    records = engine.warrant_records([r.id for r in reqs])
    now = engine.now()
    return json.dumps([{**r.to_dict(), "warrant": warrant_state(r, records.get(r.id), now)} for r in reqs],
                      sort_keys=True)


def _one_by_one_json(engine: Engine, ids: list[str]) -> str:
    now = engine.now()
    out: list[dict[str, Any]] = []
    with engine.store.read() as tx:
        for rid in ids:
            req = tx.get_request(rid)
            out.append({**req.to_dict(), "warrant": warrant_state(req, tx.warrant_for(rid), now)})
    return json.dumps(out, sort_keys=True)


def _store_of_many_states(engine: Engine, clock: FakeClock) -> None:
    guard = engine.guard()
    for i in range(3):
        clock.advance(1)
        engine.propose(proposal("suspend_service_account", "svc-ci-runner", n=i))  # pending, no vote
        clock.advance(1)
        dual = engine.propose(proposal("rotate_api_key", "svc-payments-key", n=i))
        vote(engine, dual, "alice")  # pending with one approval
        clock.advance(1)
        single = engine.propose(proposal("suspend_service_account", "svc-ci-runner", n=100 + i))
        vote(engine, single, "carol")  # granted
        if i:
            guard.execute(engine.warrant(single.id).token, single.action, lambda a: None)  # executed
        clock.advance(1)
        rejected = engine.propose(proposal("suspend_service_account", "svc-ci-runner", n=200 + i))
        vote(engine, rejected, "carol", "reject")
        clock.advance(1)
        clock.advance(1)
        # Two votes, recorded in an order that is not their approvers' (the listing must keep the recorded order).
        two = engine.propose(proposal("rotate_api_key", "svc-payments-key", n=300 + i))
        vote(engine, two, "bob")
        clock.advance(1)
        vote(engine, two, "alice", "reject")
        engine.propose(proposal("rotate_api_key", "dev-analytics-key", n=i))  # auto_allow: warrant issued
        engine.propose(proposal("rotate_api_key", "no-such-identity", n=i))  # same second: the id breaks the tie


def test_listing_pages_print_what_per_request_reads_print(make_engine: EngineFactory, clock: FakeClock) -> None:
    engine = make_engine()
    _store_of_many_states(engine, clock)
    everything = engine.list(limit=1000)
    assert len(everything) == 21
    assert len({r.status for r in everything}) >= 4, {r.status for r in everything}
    assert any(r.votes for r in everything)
    assert [[v.approver for v in r.votes] for r in everything if len(r.votes) == 2] == [["bob", "alice"]] * 3
    assert _listing_json(engine, everything) == _one_by_one_json(engine, [r.id for r in everything])

    for status in (None, "pending", "granted", "executed"):
        cursor = None
        listed: list[str] = []
        while True:
            page = engine.list(status, limit=4, before=cursor)
            if not page:
                break
            assert _listing_json(engine, page) == _one_by_one_json(engine, [r.id for r in page])
            listed += [r.id for r in page]
            cursor = ListCursor.after(page[-1])
        want = [r.id for r in everything if status is None or r.status == status]
        assert listed == want, status

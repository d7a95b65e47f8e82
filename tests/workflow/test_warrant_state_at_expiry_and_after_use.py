"""Fault: the warrant state a person reads (``hitlgate show``, ``requests``, the service) is wrong at the edges.

A warrant is dead from the second it expires (the guard refuses it at
``expires_at``), so the state printed at exactly ``expires_at`` must say
``expired``, not ``issued``; and a used warrant must say when it was used.
Real SQLite, the embedded engine.
"""

from __future__ import annotations

from datetime import timedelta

from hitlgate.engine._time import format_time
from hitlgate.engine.approve.lifecycle import warrant_state
from tests.workflow._helpers import FakeClock, proposal
from tests.workflow.conftest import EngineFactory

AUTO = proposal("rotate_api_key", "dev-analytics-key")


def test_warrant_at_exactly_its_expiry_reads_expired(make_engine: EngineFactory) -> None:
    engine = make_engine()
    req = engine.propose(AUTO)
    rec = engine.warrant(req.id)
    base = {"jti": rec.jti, "issued_at": format_time(rec.issued_at), "expires_at": format_time(rec.expires_at),
            "consumed_at": None, "outcome": None}
    assert warrant_state(req, rec, rec.expires_at - timedelta(seconds=1)) == {"state": "issued", **base}
    assert warrant_state(req, rec, rec.expires_at) == {"state": "expired", **base}


def test_used_warrant_reads_consumed_with_its_time(make_engine: EngineFactory, clock: FakeClock) -> None:
    engine = make_engine()
    req = engine.propose(AUTO)
    rec = engine.warrant(req.id)
    used_at = clock.advance(2)
    engine.guard().execute(rec.token, req.action, lambda a: None)
    with engine.store.read() as tx:
        req = tx.get_request(req.id)
        rec = tx.warrant_for(req.id)
    assert rec is not None
    assert warrant_state(req, rec, used_at) == {
        "state": "consumed", "jti": rec.jti, "issued_at": format_time(rec.issued_at),
        "expires_at": format_time(rec.expires_at), "consumed_at": format_time(used_at), "outcome": "executed"}

"""Threat: someone with database write access moves a granted request's time forward to stretch its warrant.

A warrant lives for the tier's lifetime counted from the grant. Its end is
computed from the ``granted`` audit event (inside the hash chain), not from
the request row's ``updated_at``, which a database writer can set to
anything: otherwise moving ``updated_at`` to "now" would make an expired
grant fetch a fresh warrant, or a late fetch get a warrant that lives past
the lifetime the policy gave.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import IllegalTransition
from tests.workflow._helpers import FakeClock, proposal, vote


def _move_updated_at(engine: Engine, request_id: str) -> None:
    with engine.store.engine.begin() as conn:
        done = conn.execute(t.requests.update().where(t.requests.c.id == request_id)
                            .values(updated_at=engine.now())).rowcount
    assert done == 1


def test_moved_grant_time_does_not_revive_a_lapsed_grant(engine: Engine, clock: FakeClock) -> None:
    req = vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol")
    clock.advance(req.decision.warrant_ttl_seconds + 5)
    _move_updated_at(engine, req.id)
    with pytest.raises(IllegalTransition, match=f"request {req.id} was granted but its warrant lifetime ran out"):
        engine.warrant(req.id)


def test_moved_grant_time_does_not_stretch_a_late_warrant(engine: Engine, clock: FakeClock) -> None:
    req = vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol")
    granted_at = clock.now
    clock.advance(req.decision.warrant_ttl_seconds - 60)
    _move_updated_at(engine, req.id)
    record = engine.warrant(req.id)
    assert record.expires_at == granted_at + timedelta(seconds=req.decision.warrant_ttl_seconds)
    with engine.store.read() as tx:
        assert tx.conn.execute(sa.select(t.requests.c.updated_at).where(t.requests.c.id == req.id)).scalar_one() \
            > granted_at

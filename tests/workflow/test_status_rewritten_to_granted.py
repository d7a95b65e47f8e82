"""Threat: someone with database write access marks a pending request granted, with no vote at all.

The row says ``granted`` but the audit chain holds no ``granted`` event and
the votes table no approval. ``hitlgate warrant`` must refuse it for the
missing quorum, as a refusal with its code, and sign nothing; the grant time
it falls back to (the row's own update time, since the chain has no grant)
must not turn the refusal into an internal error.
"""

from __future__ import annotations

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import ApprovalError
from tests.workflow._helpers import proposal


def test_pending_request_rewritten_to_granted_gets_no_warrant(engine: Engine) -> None:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert (req.status, req.tier) == ("pending", "single_approval")
    with engine.store.engine.begin() as conn:
        conn.execute(t.requests.update().where(t.requests.c.id == req.id).values(status="granted"))
    assert [e.kind for e in engine.audit_events() if e.request_id == req.id and e.kind == "granted"] == []
    with pytest.raises(ApprovalError, match=r"quorum no longer met: 0 of 1 approval; missing: someone with the "
                                            r"role security or a member of team-platform"):
        engine.warrant(req.id)
    with engine.store.read() as tx:
        assert tx.warrant_for(req.id) is None

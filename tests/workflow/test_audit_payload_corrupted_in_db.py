"""Threat: a database writer leaves an audit event whose payload is not JSON.

Reading the request's events, or verifying the chain, must stop with a
broken chain (``AuditChainError``) naming the event, never a crash or a
silently skipped event.
"""

from __future__ import annotations

import re

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import AuditChainError
from tests.workflow._helpers import proposal


def test_event_with_a_corrupted_payload_is_refused_by_its_number(engine: Engine) -> None:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    (event,) = [e for e in engine.audit_events(req.id) if e.kind == "proposed"]
    with engine.store.engine.begin() as conn:
        conn.execute(t.audit_events.update().where(t.audit_events.c.seq == event.seq).values(payload="{not json"))
    message = f"audit event {event.seq} is stored corrupted: payload: not JSON: "
    with pytest.raises(AuditChainError, match="^" + re.escape(message)):
        engine.audit_events(req.id)
    with engine.store.read() as tx, pytest.raises(AuditChainError, match="^" + re.escape(message)):
        tx.request_events(req.id, ("proposed",))

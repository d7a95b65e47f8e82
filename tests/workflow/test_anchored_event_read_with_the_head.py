"""A write reads the event the anchor's last checkpoint names in the statement that locks the chain head.

Every write compares the stored hash of the event at the anchor's last
checkpoint with that checkpoint (truncation and rewrite are refused). On
SQLite the store asks the audit log for that seq before the transaction
begins and reads the event's hash with the locked head, in one statement:
no query of its own (on PostgreSQL a statement's snapshot predates its wait
for the lock, so there the hash is read by a statement after it, sent in the
same round trip: test_write_reads_with_the_head). What is
compared is still the anchor as read under the lock: a checkpoint appended
in between is looked up as before, and an event rewritten in the database
is refused whichever way its hash was read.
"""

from __future__ import annotations

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import AuditChainError
from tests.workflow._helpers import granted_warrant, proposal, rewrite_chain, statements

DOC = proposal("suspend_service_account", "svc-ci-runner")
EVENT_HASH_QUERY = "SELECT audit_events.hash FROM audit_events WHERE audit_events.seq ="


def test_the_anchored_events_hash_comes_with_the_locked_head(engine: Engine) -> None:
    _req, token = granted_warrant(engine, DOC, ("carol",))
    anchored = engine.anchor.last()
    assert anchored is not None and engine.store.anchored_seq is not None
    assert engine.store.anchored_seq() == anchored.seq
    with statements(engine) as sent:
        engine.guard().execute(token, DOC["action"], lambda _a: None)
    locks = [s for s in sent if s.startswith("SELECT audit_head.seq, audit_head.hash, (SELECT audit_events.hash")]
    queried = [s for s in sent if s.startswith(EVENT_HASH_QUERY)]
    if engine.store.dialect == "sqlite":
        assert len(locks) == 2 and not queried, sent  # The consumption's write and the outcome's.
    else:
        # PostgreSQL reads it after the lock, in a statement of its own: test_chain_cut_while_waiting_for_the_head_lock.
        assert not locks and len(queried) == 2, sent


def test_a_checkpoint_anchored_after_the_early_look_is_looked_up_under_the_lock(engine: Engine) -> None:
    _req, token = granted_warrant(engine, DOC, ("carol",))
    anchored = engine.anchor.last()
    assert anchored is not None and anchored.seq > 1
    # As if another process anchored a checkpoint between this write's early look and its lock.
    engine.store.anchored_seq = lambda: 1
    with statements(engine) as sent:
        engine.guard().execute(token, DOC["action"], lambda _a: None)
    assert [s for s in sent if s.startswith(EVENT_HASH_QUERY)], sent


@pytest.mark.parametrize("early_look", ["same", "stale", "none"])
def test_a_rewritten_anchored_event_is_refused_whichever_way_its_hash_was_read(engine: Engine,
                                                                              early_look: str) -> None:
    granted_warrant(engine, DOC, ("carol",))
    anchored = engine.anchor.last()
    assert anchored is not None
    rewrite_chain(engine, anchored.seq, lambda payload: payload.update(status="forged"))
    if early_look == "stale":
        engine.store.anchored_seq = lambda: 1
    elif early_look == "none":
        engine.store.anchored_seq = None
    before = len(engine.audit_events())
    with pytest.raises(AuditChainError, match=rf"^event seq {anchored.seq} in the database differs from the signed "
                                              "checkpoint") as err:
        engine.propose(proposal("suspend_service_account", "svc-reporting"))
    assert err.value.code == "chain_rewritten"
    assert len(engine.audit_events()) == before  # Nothing was written on the rewritten chain.

"""``verify_chain`` as an auditor's library call: the incremental start, the anchored head it reports, no keys.

An incremental verify (``start=(seq, hash)``) leaves what happened before
its start to a walk from genesis: an anchored checkpoint before the start
that is missing from the store is not its finding, and a checkpoint before
the start does not stop it from taking the ones after. The report names the
highest anchored checkpoint (seq and hash). Checkpoints without public keys
cannot be verified, and that is said whole.
"""

from __future__ import annotations

import re

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.audit import Checkpoint, verify_chain
from hitlgate.errors import AuditChainError
from tests.workflow._helpers import proposal


def _two_checkpoints(engine: Engine) -> tuple[list[Checkpoint], dict]:  # type: ignore[type-arg]
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.checkpoint()
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.checkpoint()
    with engine.store.read() as tx:
        cps = list(tx.iter_checkpoints())
    assert [cp.seq for cp in cps] == [2, 4]
    return cps, engine.keyring.public_keys(include_expired=True)


def test_incremental_start_leaves_an_earlier_deleted_checkpoint_to_the_full_walk(engine: Engine) -> None:
    (early, mark), keys = _two_checkpoints(engine)
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    events = [e for e in engine.audit_events() if e.seq > mark.seq]
    # The store lost the early checkpoint; the anchor still has both.
    report = verify_chain(events, [mark], keys, anchors=[early, mark], start=(mark.seq, mark.head_hash))
    assert (report.anchored_seq, report.anchored_hash) == (mark.seq, mark.head_hash)
    # A full walk does report it.
    missing = f"held by an anchor are missing from the store (seq {early.seq})"
    with pytest.raises(AuditChainError, match=re.escape(missing)):
        verify_chain(engine.audit_events(), [mark], keys, anchors=[early, mark])


def test_report_names_the_highest_anchored_checkpoint(engine: Engine) -> None:
    (early, mark), keys = _two_checkpoints(engine)
    events = engine.audit_events()
    report = verify_chain(events, [early, mark], keys, anchors=[early, mark])
    assert (report.anchored, report.anchored_seq, report.anchored_hash) == (2, mark.seq, mark.head_hash)
    bare = verify_chain(events, [early, mark], keys)
    assert (bare.anchored, bare.anchored_seq, bare.anchored_hash) == (0, 0, "")


def test_checkpoints_without_public_keys_are_refused_whole(engine: Engine) -> None:
    (early, _), _ = _two_checkpoints(engine)
    with pytest.raises(AuditChainError, match="^" + re.escape(
            "checkpoints cannot be verified without the engine's public keys") + "$"):
        verify_chain(engine.audit_events(), [early])

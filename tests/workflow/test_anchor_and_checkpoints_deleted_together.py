"""Threat: the audit anchor *and* every checkpoint row are deleted, after a rewrite of the chain.

Before the fix, ``audit verify`` treated a missing anchor as an alarm only
while the database held checkpoints: delete an event and recompute the
hashes, ``delete from audit_checkpoints``, move the anchor file away, and it
said OK. Now the keyring (``keyring.json``, outside the database) records
the anchor and a seq it reached whenever a checkpoint is anchored on demand,
periodically, or as the anchor's first line, so a missing anchor is an error
even when the database holds no checkpoint, and an anchor cut back (or
swapped for an older copy) before that seq is one too. Real SQLite and
PostgreSQL, real keys; the attacker uses raw SQL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import AuditChainError, StorageError
from tests.workflow._helpers import proposal, rewrite_chain


def _attack(engine: Engine, tmp_path: Path) -> None:
    """Rewrite event 1 (hashes recomputed), delete every checkpoint row and move the anchor away."""
    rewrite_chain(engine, 1, lambda payload: payload.update({"note": "forged"}))
    with engine.store.engine.begin() as conn:
        conn.execute(sa.delete(t.checkpoints))
        conn.execute(sa.delete(t.consumed))
    shutil.move(engine.anchor.path, tmp_path / "moved-away.jsonl")


def test_anchor_and_checkpoints_deleted_together_is_reported(engine: Engine, tmp_path: Path) -> None:
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    cp = engine.checkpoint()
    note = engine.keyring.anchor_note()
    assert note is not None and note.seq == cp.seq and note.path == str(engine.anchor.path)
    _attack(engine, tmp_path)
    with pytest.raises(AuditChainError, match=rf"is missing, but the database holds no checkpoint, while the "
                                              rf"keyring records that the anchor .* held a checkpoint at seq "
                                              rf"{cp.seq}") as exc:
        engine.verify_audit()
    assert exc.value.code == "anchor_missing"
    with pytest.raises(StorageError, match="refuses to write") as err:
        engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert err.value.code == "anchor_missing"


def test_anchor_cut_back_before_the_seq_the_keyring_records_is_reported(engine: Engine) -> None:
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.checkpoint()
    lines = engine.anchor.path.read_text().splitlines(keepends=True)
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    later = engine.checkpoint()
    engine.anchor.path.write_text("".join(lines))
    with pytest.raises(AuditChainError,
                       match=rf"ends before seq {later.seq}, which the keyring records it held") as err:
        engine.verify_audit()
    assert err.value.code == "anchor_missing"


def test_key_rotation_keeps_the_anchor_note(engine: Engine) -> None:
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    cp = engine.checkpoint()
    engine.keyring.rotate()
    note = engine.keyring.anchor_note()
    assert note is not None and note.seq == cp.seq

"""Threat: a forged, corrupt or redirected verified mark makes ``audit verify`` skip events it never checked.

The mark (next to the anchor) tells an incremental verify where the last
successful verify stopped. Anything but a well-formed mark must mean "walk
from genesis", and writing the mark must not follow a symlink an attacker
planted at its temporary path.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.anchor import AuditAnchor
from hitlgate.errors import StorageError
from tests.workflow._helpers import proposal

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "mark",
    [
        {"seq": 0, "head_hash": DIGEST},
        {"seq": -3, "head_hash": DIGEST},
        {"seq": "6", "head_hash": DIGEST},
        {"seq": True, "head_hash": DIGEST},
        {"seq": 6.0, "head_hash": DIGEST},
        {"seq": 6, "head_hash": 6},
        {"seq": 6},
        {"head_hash": DIGEST},
        [6, DIGEST],
    ],
    ids=["zero", "negative", "string", "bool", "float", "digest-not-text", "no-digest", "no-seq", "list"],
)
def test_malformed_mark_is_ignored(tmp_path: Path, mark: object, caplog: pytest.LogCaptureFixture) -> None:
    anchor = AuditAnchor(tmp_path / "audit-anchor.jsonl")
    anchor.verified_mark_path.write_text(json.dumps(mark), encoding="utf-8")
    assert anchor.verified_mark() is None
    assert "ignoring the unreadable verified mark" in caplog.text
    if isinstance(mark, dict) and "seq" in mark and "head_hash" in mark:
        assert "(malformed): verifying from genesis" in caplog.text


def test_well_formed_mark_is_read_back_including_the_first_event(tmp_path: Path) -> None:
    anchor = AuditAnchor(tmp_path / "audit-anchor.jsonl")
    assert anchor.verified_mark() is None
    anchor.record_verified(1, DIGEST)
    assert anchor.verified_mark() == (1, DIGEST)
    assert stat.S_IMODE(os.stat(anchor.verified_mark_path).st_mode) == 0o600
    anchor.record_verified(7, DIGEST)
    assert anchor.verified_mark() == (7, DIGEST)
    anchor.clear_verified()
    assert anchor.verified_mark() is None
    anchor.clear_verified()  # Clearing twice (no mark left) is not an error.


def test_mark_write_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    anchor = AuditAnchor(tmp_path / "audit-anchor.jsonl")
    victim = tmp_path / "victim"
    victim.write_text("keep me\n", encoding="utf-8")
    tmp = anchor.verified_mark_path.with_name(anchor.verified_mark_path.name + ".tmp")
    tmp.symlink_to(victim)
    with pytest.raises(StorageError, match=f"^cannot record the verified mark {anchor.verified_mark_path}: "
                       "Too many levels of symbolic links$"):
        anchor.record_verified(6, DIGEST)
    assert victim.read_text(encoding="utf-8") == "keep me\n"
    assert anchor.verified_mark() is None


def test_corrupt_mark_makes_the_next_verify_walk_from_genesis(engine: Engine) -> None:
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert engine.checkpoint().seq == 2
    engine.verify_audit()
    engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    assert engine.verify_audit(incremental=True).start_seq == 2
    engine.anchor.verified_mark_path.write_text('{"seq": 2, "head_hash": 2}', encoding="utf-8")
    report = engine.verify_audit(incremental=True)
    assert (report.start_seq, report.events) == (0, report.head_seq)

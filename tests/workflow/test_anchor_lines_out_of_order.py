"""``audit verify`` on an anchor file whose lines are out of seq order.

The engine appends a checkpoint to its anchor after the commit that made
it, so concurrent writers can leave neighbouring lines swapped. ``audit
verify`` streams the anchor through a bounded reorder window; a file
further out of order than that (here: reversed, with the window shrunk to
two lines) is read again and held in memory, with a warning, and verifies
exactly as before: a good chain passes, one with checkpoints deleted fails with the same
finding, and an auditor's own anchor copy still counts.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import audit
from hitlgate.errors import AuditChainError


def _reverse_lines(path: Path) -> int:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(reversed(lines)))
    return len(lines)


def test_a_reversed_anchor_verifies_held_in_memory(
    five_checkpoints: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = five_checkpoints
    assert _reverse_lines(engine.anchor.path) == 5
    monkeypatch.setattr(audit, "ORDER_WINDOW", 2)
    with caplog.at_level(logging.WARNING, logger="hitlgate"):
        report = engine.verify_audit(incremental=False, record=False)
    assert (report.events, report.head_seq, report.checkpoints, report.anchored) == (10, 10, 5, 5)
    assert any("further out of order than 2 lines" in r.getMessage()
               and "verifying again with its lines held in memory" in r.getMessage() for r in caplog.records)


def test_a_swapped_pair_streams_without_a_warning(
    five_checkpoints: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = five_checkpoints
    lines = engine.anchor.path.read_bytes().splitlines(keepends=True)
    lines[1], lines[2] = lines[2], lines[1]
    engine.anchor.path.write_bytes(b"".join(lines))
    monkeypatch.setattr(audit, "ORDER_WINDOW", 2)
    with caplog.at_level(logging.WARNING, logger="hitlgate"):
        report = engine.verify_audit(incremental=False, record=False)
    assert (report.head_seq, report.anchored) == (10, 5)
    assert not [r for r in caplog.records if "out of order" in r.getMessage()]


def test_deleted_checkpoints_are_found_through_a_reversed_anchor(
    five_checkpoints: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = five_checkpoints
    _reverse_lines(engine.anchor.path)
    monkeypatch.setattr(audit, "ORDER_WINDOW", 2)
    # A writer with database access deletes every stored checkpoint after seq 4: the anchor still holds them.
    with engine.store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_checkpoints WHERE seq > 4")
    with pytest.raises(AuditChainError, match=r"^3 signed checkpoint\(s\) held by an anchor are missing from the "
                       r"store \(seq 6, 8, 10\): checkpoints were deleted$"):
        engine.verify_audit(incremental=False, record=False)

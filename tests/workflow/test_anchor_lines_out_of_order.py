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

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import audit
from hitlgate.errors import AuditChainError
from tests.workflow._helpers import proposal


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


def test_many_copies_of_one_anchor_line_verify(five_checkpoints: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = five_checkpoints
    lines = engine.anchor.path.read_bytes().splitlines(keepends=True)
    engine.anchor.path.write_bytes(b"".join([lines[0]] * 6 + lines[1:]))
    monkeypatch.setattr(audit, "ORDER_WINDOW", 2)
    report = engine.verify_audit(incremental=False, record=False)
    assert (report.head_seq, report.checkpoints, report.anchored) == (10, 5, 5)


def test_anchor_lines_appended_after_the_snapshot_are_not_read(
    five_checkpoints: Engine, make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live engine checkpoints while a long verify streams the anchor: its new lines are not this verify's."""
    engine = five_checkpoints
    writer = make_engine()
    monkeypatch.setattr(audit, "ORDER_WINDOW", 1)
    real = engine.store.read
    appended: list[int] = []

    @contextlib.contextmanager
    def read_then_write(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real(*args, **kwargs) as tx:
            events = tx.iter_events

            def iter_events(*a: Any, **k: Any) -> Iterator[Any]:
                for n, event in enumerate(events(*a, **k)):
                    if n == 1 and not appended:
                        # Another engine commits and anchors two checkpoints after the snapshot began.
                        for _ in range(2):
                            writer.propose(proposal("suspend_service_account", "svc-ci-runner"))
                            appended.append(writer.checkpoint().seq)
                    yield event

            tx.iter_events = iter_events
            yield tx

    monkeypatch.setattr(engine.store, "read", read_then_write)
    report = engine.verify_audit(incremental=False, record=False)
    assert appended == [12, 14]
    assert (report.head_seq, report.anchored) == (10, 5)
    monkeypatch.undo()
    assert engine.verify_audit(incremental=False, record=False).head_seq == 14


def test_the_fallback_counts_only_its_own_read_of_the_anchor(
    five_checkpoints: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The anchor is gone by the second read: the keyring's note of what it held still catches it."""
    engine = five_checkpoints
    _reverse_lines(engine.anchor.path)
    monkeypatch.setattr(audit, "ORDER_WINDOW", 2)
    anchor_type = type(engine.anchor)
    reads: list[int] = []
    real_iter = anchor_type.iter_checkpoints

    def first_read_only(self: Any, **kwargs: Any) -> Iterator[Any]:
        reads.append(1)
        if len(reads) == 1:
            yield from real_iter(self, **kwargs)

    monkeypatch.setattr(anchor_type, "iter_checkpoints", first_read_only)
    with pytest.raises(AuditChainError, match="ends before seq 10, which the keyring records it held"):
        engine.verify_audit(incremental=False, record=False)
    assert len(reads) == 2

"""An incremental ``audit verify`` begins reading the anchor at its verified mark's line.

The mark (next to the anchor, outside the database) records where the
checkpoint it names starts in the anchor file. An incremental verify reads
the anchor from there instead of parsing every earlier line (at 10^7 events,
2.4 million lines and most of the incremental verify's minute). The offset
is only a shortcut: the line there must be the mark's checkpoint (its seq
and head hash), or the whole file is read, as without a mark. Lines before
the mark are not checked again incrementally (the stated contract); a full
verify reads them. Real crypto, real SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import logging

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import AuditChainError
from tests.workflow._helpers import proposal


@pytest.fixture
def marked(engine: Engine) -> Engine:
    """Three checkpoints in the anchor, verified (the mark at the last), then one more request after it."""
    for target in ("svc-ci-runner", "dev-analytics-key", "svc-ci-runner"):
        engine.propose(proposal("suspend_service_account" if target == "svc-ci-runner" else "rotate_api_key",
                                target))
        engine.checkpoint()
    engine.verify_audit()
    engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    engine.checkpoint()
    return engine


def _lines(engine: Engine) -> list[bytes]:
    return engine.anchor.path.read_bytes().splitlines(keepends=True)


def _mark(engine: Engine) -> dict[str, object]:
    doc: dict[str, object] = json.loads(engine.anchor.verified_mark_path.read_text(encoding="utf-8"))
    return doc


def _start_of(engine: Engine, seq: int) -> int:
    """Where the anchor line of the checkpoint at ``seq`` starts."""
    at = 0
    for line in _lines(engine):
        if json.loads(line)["seq"] == seq:
            return at
        at += len(line)
    raise AssertionError(f"no anchor line at seq {seq}")


def test_the_mark_records_where_its_checkpoint_line_starts(marked: Engine) -> None:
    mark = _mark(marked)
    lines = _lines(marked)
    assert len(lines) >= 4
    offset = _start_of(marked, mark["seq"])  # type: ignore[arg-type]
    assert mark["offset"] == offset > 0
    # Lines came after the mark (the request proposed after the verify, and its checkpoint).
    assert offset + len(lines[-1]) < sum(map(len, lines))
    assert marked.anchor.line_of(mark["seq"], mark["head_hash"], offset) == offset  # type: ignore[arg-type]
    marked.verify_audit(incremental=True)
    # The new mark is the last seq's first line (a later copy of the same seq does not move it).
    last = json.loads(lines[-1])
    assert _mark(marked) == {"seq": last["seq"], "head_hash": last["head_hash"],
                             "offset": _start_of(marked, last["seq"])}


def test_lines_before_the_mark_are_not_read_incrementally_and_a_full_verify_reads_them(marked: Engine) -> None:
    lines = _lines(marked)
    marked.anchor.path.write_bytes(b"{not json}\n".rjust(len(lines[0]), b" ") + b"".join(lines[1:]))
    report = marked.verify_audit(incremental=True, record=False)
    assert report.start_seq == _mark(marked)["seq"]
    with pytest.raises(AuditChainError, match=r"export line 1 is malformed"):
        marked.verify_audit()


def test_a_mark_whose_offset_holds_another_line_reads_the_whole_anchor(
    marked: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # A blank line at the top shifts every line: the offset now falls inside the second line.
    lines = _lines(marked)
    marked.anchor.path.write_bytes(b"\n" + b"".join(lines))
    with caplog.at_level(logging.WARNING):
        report = marked.verify_audit(incremental=True, record=False)
    assert "has no line for the verified mark" in caplog.text
    assert report.start_seq == _mark(marked)["seq"]
    # Read from the start, so a malformed first line is found again.
    marked.anchor.path.write_bytes(b"\n" + b"{not json}\n" + b"".join(lines))
    with pytest.raises(AuditChainError, match=r"export line 2 is malformed"):
        marked.verify_audit(incremental=True, record=False)


@pytest.mark.parametrize("offset", [1, 10**9, -5, "12", True])
def test_a_forged_or_impossible_offset_reads_the_whole_anchor(marked: Engine, offset: object) -> None:
    mark = _mark(marked)
    marked.anchor.verified_mark_path.write_text(json.dumps({**mark, "offset": offset}), encoding="utf-8")
    lines = _lines(marked)
    marked.anchor.path.write_bytes(b"{not json}\n".rjust(len(lines[0]), b" ") + b"".join(lines[1:]))
    with pytest.raises(AuditChainError, match=r"export line 1 is malformed"):
        marked.verify_audit(incremental=True, record=False)


def test_a_mark_written_before_offsets_reads_the_whole_anchor(marked: Engine) -> None:
    mark = _mark(marked)
    del mark["offset"]
    marked.anchor.verified_mark_path.write_text(json.dumps(mark), encoding="utf-8")
    assert marked.anchor.verified_offset() == 0
    report = marked.verify_audit(incremental=True)
    assert report.start_seq == mark["seq"]
    assert _mark(marked)["offset"] == _start_of(marked, json.loads(_lines(marked)[-1])["seq"])


def test_an_anchor_cut_before_the_mark_is_still_reported(marked: Engine) -> None:
    marked.anchor.path.write_bytes(marked.anchor.path.read_bytes()[:_start_of(marked, _mark(marked)["seq"])])
    with pytest.raises(AuditChainError, match=r"^incremental verify starts at seq \d+, but no anchored checkpoint "
                                              r"signs that seq") as exc:
        marked.verify_audit(incremental=True, record=False)
    assert exc.value.code == "verified_mark_unanchored"


def test_verified_offset_of_no_mark_or_an_unreadable_one_is_zero(marked: Engine) -> None:
    engine = marked
    engine.anchor.verified_mark_path.unlink()
    assert engine.anchor.verified_offset() == 0
    engine.anchor.verified_mark_path.write_text("[1, 2]", encoding="utf-8")
    assert engine.anchor.verified_offset() == 0
    engine.anchor.verified_mark_path.write_bytes(b"\xff\xfe")
    assert engine.anchor.verified_offset() == 0

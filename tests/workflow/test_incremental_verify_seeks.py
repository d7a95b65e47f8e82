"""An incremental ``audit verify`` scans the anchor up to its start instead of parsing every line.

The walk of an incremental verify starts at its verified mark (seq N). The
anchor's lines before the first line at or above N name lower seqs, which
that walk does not check again: :meth:`AuditAnchor.start_of` reads their
seqs from the bytes (the shape :func:`anchor_line` writes), without parsing
JSON or checking signatures, and parsing begins at the first line that is
at or above N or has any other shape. At 10^7 events (2.4 million lines)
that scan takes seconds where parsing took a minute. Nothing stored outside
the file (no offset in the mark) decides where parsing begins, so a copy of
the mark's line appended later cannot hide the lines between. Real crypto,
real SQLite and PostgreSQL.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.anchor import AuditAnchor, anchor_line
from hitlgate.errors import AuditChainError
from tests.workflow._helpers import granted_warrant, proposal, rewrite_chain


@pytest.fixture
def marked(engine: Engine) -> Engine:
    """Checkpoints in the anchor, verified (the mark at the last one), then a granted warrant after it."""
    for target in ("svc-ci-runner", "dev-analytics-key"):
        engine.propose(proposal("suspend_service_account" if target == "svc-ci-runner" else "rotate_api_key",
                                target))
        engine.checkpoint()
    engine.verify_audit()
    # Anchored checkpoints after the mark that the keyring does not note (warrant issue).
    granted_warrant(engine, proposal("suspend_service_account", "svc-ci-runner", grace_seconds=60), ("carol",))
    return engine


def _lines(engine: Engine) -> list[bytes]:
    return engine.anchor.path.read_bytes().splitlines(keepends=True)


def _mark_seq(engine: Engine) -> int:
    mark = engine.anchor.verified_mark()
    assert mark is not None
    return mark[0]


def _first_at_or_above(engine: Engine, seq: int) -> tuple[int, int]:
    """(offset of the first line at or above seq, highest seq before it), counted the slow way."""
    at, highest = 0, 0
    for line in _lines(engine):
        if json.loads(line)["seq"] >= seq:
            return at, highest
        at, highest = at + len(line), max(highest, json.loads(line)["seq"])
    return at, highest


def test_start_of_is_the_first_line_at_or_above_the_mark(marked: Engine) -> None:
    seq = _mark_seq(marked)
    want = _first_at_or_above(marked, seq)
    assert want[0] > 0 and 0 < want[1] < seq
    assert marked.anchor.start_of(seq) == want
    assert marked.anchor.start_of(1) == (0, 0)
    assert marked.anchor.start_of(10**6) == (marked.anchor.size(), max(json.loads(x)["seq"] for x in _lines(marked)))
    # `until` (the size when the snapshot began) ends the scan there.
    assert marked.anchor.start_of(10**6, until=want[0]) == want
    assert AuditAnchor(marked.anchor.path.with_name("nothing.jsonl")).start_of(5) == (0, 0)


def test_the_scan_reads_exactly_the_engines_own_lines(marked: Engine) -> None:
    # Every line the engine writes has the scanned shape; any change to that shape stops the scan there.
    lines = _lines(marked)
    last = marked.anchor.last()
    assert last is not None and anchor_line(last).encode() == lines[-1]
    assert marked.anchor.start_of(10**6) == (marked.anchor.size(), max(json.loads(x)["seq"] for x in lines))
    doc = json.loads(lines[0])
    # Other spacing: still JSON, so parsed (and, below the mark, not checked further).
    for changed in (lines[0].replace(b'", "kid"', b'",  "kid"'), lines[0].replace(b"\n", b"\r\n"),
                    lines[0][:-1] + b" \n"):
        marked.anchor.path.write_bytes(changed + b"".join(lines[1:]))
        assert marked.anchor.start_of(10**19) == (0, 0), changed
        marked.verify_audit(incremental=True, record=False)
    # Values a full read refuses (the scan's shape is the engine's, character by character):
    for changed in (lines[0].replace(b'"seq": ', b'"seq": 0'),
                    lines[0].replace(doc["at"].encode(), b"not-a-time"),
                    lines[0].replace(doc["kid"].encode(), doc["kid"].encode() + b"\x01"),
                    lines[0].replace(doc["token"].encode(), doc["token"].encode() + b"\xff"),
                    lines[0].replace(doc["head_hash"].encode(), doc["head_hash"].upper().encode()),
                    lines[0].replace(f'"seq": {doc["seq"]},'.encode(), b'"seq": 0,'),
                    lines[0].replace(f'"seq": {doc["seq"]},'.encode(), b'"seq": 1000000000000000000,')):
        marked.anchor.path.write_bytes(changed + b"".join(lines[1:]))
        assert marked.anchor.start_of(10**19) == (0, 0), changed
        # Each is parsed, so a full read and an incremental one refuse it alike.
        with pytest.raises(AuditChainError, match="export line 1 is malformed|forged or corrupt|fields differ"):
            marked.verify_audit(incremental=True, record=False)


def test_a_copy_of_the_marks_line_appended_later_hides_nothing(marked: Engine) -> None:
    # The hostile review's attack on a stored offset: a database-only attacker rewrites the chain after the
    # mark and deletes those checkpoint rows; someone who can append to the anchor and replace the mark
    # adds a copy of the mark's signed line at the end. Parsing still begins at the first line at or
    # above the mark, so the anchored checkpoints after it are read and the rewrite is named.
    seq = _mark_seq(marked)
    rewrite_chain(marked, seq + 1, lambda p: p.update(hostile="rewritten"))
    with marked.store.engine.begin() as conn:
        conn.execute(sa.delete(t.checkpoints).where(t.checkpoints.c.seq > seq))
    start, _ = _first_at_or_above(marked, seq)
    copy = marked.anchor.path.read_bytes()[start:].splitlines(keepends=True)[0]
    with open(marked.anchor.path, "ab") as fh:
        fh.write(copy)
    mark = json.loads(marked.anchor.verified_mark_path.read_text(encoding="utf-8"))
    marked.anchor.verified_mark_path.write_text(json.dumps({**mark, "offset": marked.anchor.size() - len(copy)}),
                                                encoding="utf-8")
    with pytest.raises(AuditChainError, match=r"was rewritten|differs from the signed checkpoint"):
        marked.verify_audit(incremental=True, record=False)
    with pytest.raises(AuditChainError, match=r"was rewritten|differs from the signed checkpoint"):
        marked.verify_audit(record=False)


def test_a_forged_line_before_the_mark_is_found_only_by_a_full_verify(marked: Engine) -> None:
    # The stated contract: lines before the mark are not checked again incrementally (their seq is read,
    # their signature is not); --full checks them.
    lines = _lines(marked)
    doc = json.loads(lines[0])
    token = doc["token"]
    tail = b"AAAA" if not token.endswith("AAAA") else b"BBBB"
    forged = lines[0].replace(token.encode(), token[:-4].encode() + tail)
    marked.anchor.path.write_bytes(forged + b"".join(lines[1:]))
    report = marked.verify_audit(incremental=True, record=False)
    assert report.start_seq == _mark_seq(marked)
    with pytest.raises(AuditChainError, match=rf"checkpoint at seq {doc['seq']} is forged or corrupt"):
        marked.verify_audit(record=False)


def test_a_malformed_line_before_the_mark_is_still_refused_incrementally(marked: Engine) -> None:
    lines = _lines(marked)
    marked.anchor.path.write_bytes(lines[0] + b"{not json}\n" + b"".join(lines[1:]))
    with pytest.raises(AuditChainError, match=rf"the line at byte {len(lines[0])} is malformed"):
        marked.verify_audit(incremental=True, record=False)


def test_a_higher_seq_written_before_the_marks_line_is_read(marked: Engine) -> None:
    # Writers append after their commits, so a later checkpoint's line can come first: the scan stops at
    # the first line at or above the mark, whichever seq it names.
    seq = _mark_seq(marked)
    lines = _lines(marked)
    i = next(n for n, line in enumerate(lines) if json.loads(line)["seq"] == seq)
    j = next(n for n, line in enumerate(lines) if json.loads(line)["seq"] > seq)
    lines[i], lines[j] = lines[j], lines[i]
    marked.anchor.path.write_bytes(b"".join(lines))
    assert marked.anchor.start_of(seq)[0] == sum(map(len, lines[:i]))
    report = marked.verify_audit(incremental=True, record=False)
    assert report.start_seq == seq and report.anchored >= 1


def test_an_anchor_cut_before_the_mark_is_still_reported(marked: Engine) -> None:
    start, _ = _first_at_or_above(marked, _mark_seq(marked))
    marked.anchor.path.write_bytes(marked.anchor.path.read_bytes()[:start])
    with pytest.raises(AuditChainError, match=r"^incremental verify starts at seq \d+, but no anchored checkpoint "
                                              r"signs that seq") as exc:
        marked.verify_audit(incremental=True, record=False)
    assert exc.value.code == "verified_mark_unanchored"


def test_a_deeply_nested_mark_is_unreadable_not_a_crash(marked: Engine) -> None:
    marked.anchor.verified_mark_path.write_text("[" * 100_000, encoding="utf-8")
    assert marked.anchor.verified_mark() is None
    assert marked.verify_audit(incremental=True, record=False).start_seq == 0


def test_a_deeply_nested_anchor_line_is_malformed_not_a_crash(marked: Engine) -> None:
    # Read by the guard's head check (the last line) and by every verify: an AuditChainError, no traceback.
    lines = _lines(marked)
    marked.anchor.path.write_bytes(b"".join(lines) + b"[" * 5_000 + b"\n")
    with pytest.raises(AuditChainError, match="the last line of the audit anchor .* is malformed"):
        marked.anchor.last()
    for incremental in (True, False):
        with pytest.raises(AuditChainError, match=rf"export line {len(lines) + 1} is malformed|the line at byte"):
            marked.verify_audit(incremental=incremental, record=False)
    marked.anchor.path.write_bytes(b"[" * 5_000 + b"\n" + b"".join(lines))
    with pytest.raises(AuditChainError, match="export line 1 is malformed"):
        marked.verify_audit(record=False)

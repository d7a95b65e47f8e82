"""``audit verify`` output is a contract: the JSON keys scripts read and the sentence people read.

A monitoring job alerts on ``unverifiable_checkpoints`` and ``anchor_reinits``;
a renamed key or a dropped clause would silence it without failing anything.
"""

from __future__ import annotations

from hitlgate.engine.approve.workflow import AuditReport

HEAD = "sha256:" + "cd" * 32


def test_plain_report() -> None:
    report = AuditReport(events=12, checkpoints=2, head_seq=12, head_hash=HEAD)
    assert report.to_dict() == {
        "ok": True, "events": 12, "checkpoints": 2, "anchored": 0, "anchor": None, "head_seq": 12,
        "head_hash": HEAD, "anchor_reinits": [], "unverifiable_checkpoints": 0, "start_seq": 0,
        "requests_checked": 0,
    }
    assert report.describe() == (
        f"audit chain OK: 12 events, 2 signed checkpoint(s), 0 anchored outside the database, head #12 {HEAD}"
    )


def test_report_with_every_caveat() -> None:
    report = AuditReport(
        events=5, checkpoints=3, head_seq=40, head_hash=HEAD, anchored=2, anchor="/srv/audit-anchor.jsonl",
        anchor_reinits=(17, 30), unverifiable_checkpoints=1, start_seq=35, requests_checked=4,
    )
    d = report.to_dict()
    assert (d["anchored"], d["anchor"], d["anchor_reinits"]) == (2, "/srv/audit-anchor.jsonl", [17, 30])
    assert (d["unverifiable_checkpoints"], d["start_seq"], d["requests_checked"]) == (1, 35, 4)
    assert report.describe() == (
        "audit chain OK: 5 events (incremental: events after #35, verified before; tables of 4 request(s) with "
        "events since; --full walks from genesis), 3 signed checkpoint(s), 2 anchored outside the database "
        f"(/srv/audit-anchor.jsonl), head #40 {HEAD}; the anchor was re-initialised at #17, #30, checkpoints "
        "before that are not anchored here; 1 checkpoint(s) signed by lost engine keys are not verifiable "
        "with the local keys (use --jwks with the old keys)"
    )

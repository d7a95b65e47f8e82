"""Tampering before and after the checkpoint an incremental ``audit verify`` starts from.

An incremental verify starts at the last anchored checkpoint a previous
verify reached (the mark, kept next to the anchor outside the database). It
re-checks that the stored event there still has the signed hash, then walks
forward. What it catches and what only ``--full`` catches is stated in
:meth:`hitlgate.engine.approve.workflow.Engine.verify_audit`; each case is tested
here both ways. Real crypto, real SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import event as sa_event

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.audit import AuditEvent, verify_chain
from hitlgate.errors import AuditChainError
from tests.workflow._helpers import proposal, rewrite_chain


@pytest.fixture
def marked(engine: Engine) -> Engine:
    """Two requests checkpointed at seq 6, verified once (the mark is at 6), then a third request after it."""
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    assert engine.checkpoint().seq == 6
    engine.verify_audit()
    assert engine.anchor.verified_mark() == (6, engine.audit_events()[5].hash)
    engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    return engine


def _edit_in_place(engine: Engine, seq: int) -> None:
    """Change an event's payload and leave every stored hash alone (its content no longer matches its hash)."""
    ev = engine.audit_events()[seq - 1]
    payload = {**ev.payload, "requester": {"id": "someone-else", "kind": "human"}}
    with engine.store.engine.begin() as conn:
        conn.execute(t.audit_events.update().where(t.audit_events.c.seq == seq)
                     .values(payload=json.dumps(payload, sort_keys=True)))


def test_incremental_verify_walks_only_after_the_mark(marked: Engine) -> None:
    report = marked.verify_audit(incremental=True)
    assert (report.start_seq, report.head_seq) == (6, report.head_seq)
    assert report.events == report.head_seq - 6
    full = marked.verify_audit()
    assert (full.start_seq, full.events) == (0, full.head_seq)


def test_event_edited_after_the_mark_is_caught_incrementally(marked: Engine) -> None:
    _edit_in_place(marked, 7)
    with pytest.raises(AuditChainError, match=r"event seq 7 was modified"):
        marked.verify_audit(incremental=True)


def test_rewrite_before_the_mark_is_caught_incrementally(marked: Engine) -> None:
    # Recomputing the hashes after the edit changes the hash at the mark, which an anchored checkpoint signs.
    rewrite_chain(marked, 3, lambda p: p.update(requester={"id": "someone-else", "kind": "human"}))
    with pytest.raises(AuditChainError, match=r"event seq 6 differs from the signed checkpoint at seq 6"):
        marked.verify_audit(incremental=True)


def test_events_deleted_before_the_mark_are_caught_incrementally(marked: Engine) -> None:
    with marked.store.engine.begin() as conn:
        conn.execute(sa.delete(t.audit_events).where(t.audit_events.c.seq == 4))
    with pytest.raises(AuditChainError, match=r"event seq 5: seq 4 missing"):
        marked.verify_audit(incremental=True)


def test_in_place_edit_before_the_mark_is_caught_only_by_a_full_verify(marked: Engine) -> None:
    _edit_in_place(marked, 3)
    # Documented limit: the stored hashes before the mark are not recomputed incrementally.
    assert marked.verify_audit(incremental=True).start_seq == 6
    with pytest.raises(AuditChainError, match=r"event seq 3 was modified"):
        marked.verify_audit()


def test_table_row_of_a_request_quiet_since_the_mark_is_caught_only_by_a_full_verify(marked: Engine) -> None:
    first = marked.audit_events()[0].request_id
    with marked.store.engine.begin() as conn:
        conn.execute(t.requests.update().where(t.requests.c.id == first).values(tier="auto_allow"))
    assert marked.verify_audit(incremental=True).requests_checked == 1
    with pytest.raises(AuditChainError, match=r"the tier was rewritten"):
        marked.verify_audit()


def test_table_row_of_a_request_with_events_since_the_mark_is_caught_incrementally(marked: Engine) -> None:
    newest = marked.audit_events()[-1].request_id
    with marked.store.engine.begin() as conn:
        conn.execute(t.requests.update().where(t.requests.c.id == newest).values(tier="unanimous"))
    with pytest.raises(AuditChainError, match=r"the tier was rewritten"):
        marked.verify_audit(incremental=True)


def test_mark_naming_an_unanchored_seq_is_refused(marked: Engine) -> None:
    # Only someone who can write the key directory can move the mark; even then it must name an anchored checkpoint.
    ev = marked.audit_events()[6]
    marked.anchor.verified_mark_path.write_text(json.dumps({"seq": ev.seq, "head_hash": ev.hash}))
    with pytest.raises(AuditChainError, match=rf"^incremental verify starts at seq {ev.seq}, but no anchored "
                                              r"checkpoint signs that seq: run a full verify \(--full\)$") as err:
        marked.verify_audit(incremental=True)
    assert err.value.code == "verified_mark_unanchored"


def test_mark_and_event_hash_rewritten_together_are_refused(marked: Engine) -> None:
    # A writer of the database and the key directory rewrites event 6's stored hash and moves the mark
    # to match it: the incremental start agrees with the table, but not with the signed, anchored checkpoint.
    forged = "0" * 64
    with marked.store.engine.begin() as conn:
        conn.execute(t.audit_events.update().where(t.audit_events.c.seq == 6).values(hash=forged))
    marked.anchor.verified_mark_path.write_text(json.dumps({"seq": 6, "head_hash": forged}))
    with pytest.raises(AuditChainError, match=r"^incremental verify starts at seq 6, but the anchored checkpoint "
                                              r"there signs another hash: run a full verify \(--full\)$") as err:
        marked.verify_audit(incremental=True)
    assert err.value.code == "verified_mark_unanchored"


def test_unreadable_mark_means_a_full_verify(marked: Engine) -> None:
    marked.anchor.verified_mark_path.write_text("{not json")
    assert marked.verify_audit(incremental=True).start_seq == 0


def test_verify_chain_pulls_events_one_at_a_time(marked: Engine) -> None:
    """Structural: the walk consumes a generator lazily, so it never needs the chain in memory."""
    events = marked.audit_events()
    bad = AuditEvent(events[2].seq, events[2].at, events[2].kind, events[2].request_id, {"x": 1},
                     events[2].prev_hash, events[2].hash)
    pulled: list[int] = []

    def stream() -> Iterator[AuditEvent]:
        for ev in [*events[:2], bad, *events[3:]]:
            pulled.append(ev.seq)
            yield ev

    with pytest.raises(AuditChainError, match=r"event seq 3 was modified"):
        verify_chain(stream())
    assert pulled == [1, 2, 3]


def test_verify_reads_the_chain_in_bounded_chunks(marked: Engine) -> None:
    """Structural: every statement of a full verify that reads event rows is bounded (LIMIT or a key list)."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(" ".join(statement.split()))

    sa_event.listen(marked.store.engine, "before_cursor_execute", record)
    try:
        marked.verify_audit()
    finally:
        sa_event.remove(marked.store.engine, "before_cursor_execute", record)
    reads = [s for s in statements if "audit_events.payload" in s]
    assert reads, statements
    unbounded = [s for s in reads if "LIMIT" not in s and "request_id IN" not in s and "kind IN" not in s]
    assert unbounded == []
    assert any("LIMIT" in s and "audit_events.seq >" in s for s in reads)


def test_cli_verify_is_incremental_after_the_first_and_full_on_request(tmp_path: Path) -> None:
    from hitlgate.cli import cli

    cfg = tmp_path / "hitlgate.yaml"
    cfg.write_text(f"state: sqlite:///{tmp_path / 'state.db'}\nkeys: {tmp_path / 'keys'}\n")
    env = {"HITLGATE_CONFIG": str(cfg)}
    doc = tmp_path / "p.json"
    doc.write_text(json.dumps(proposal("suspend_service_account", "svc-ci-runner")))

    def run(*args: str) -> dict[str, object]:
        result = CliRunner().invoke(cli, ["--json", *args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    CliRunner().invoke(cli, ["propose", str(doc)], env=env)  # Pending: exit code 4.
    run("audit", "checkpoint")
    assert run("audit", "verify")["start_seq"] == 0
    CliRunner().invoke(cli, ["propose", str(doc)], env=env)
    second = run("audit", "verify")
    assert second["start_seq"] == 2 and second["events"] == 2
    assert run("audit", "verify", "--full")["start_seq"] == 0


def test_failed_full_verify_drops_the_mark_so_incremental_cannot_say_ok(marked: Engine) -> None:
    # An edit before the mark, which only a walk from genesis finds.
    _edit_in_place(marked, 3)
    with pytest.raises(AuditChainError, match=r"event seq 3 was modified"):
        marked.verify_audit()
    assert marked.anchor.verified_mark() is None
    # The routine (incremental) check now walks from genesis and fails too.
    with pytest.raises(AuditChainError, match=r"event seq 3 was modified"):
        marked.verify_audit(incremental=True)


def test_deleted_event_hidden_by_a_forged_seq_zero_is_caught_incrementally(marked: Engine) -> None:
    # A writer deletes event 4 and inserts a copy at seq 0, so "events up to the mark" still counts 6:
    # only events numbered from 1 count, so the gap is still found.
    with marked.store.engine.begin() as conn:
        row = conn.execute(sa.select(t.audit_events).where(t.audit_events.c.seq == 4)).mappings().one()
        conn.execute(sa.delete(t.audit_events).where(t.audit_events.c.seq == 4))
        conn.execute(t.audit_events.insert().values({**row, "seq": 0}))
    with pytest.raises(AuditChainError, match=r"^event seq 5: seq 4 missing: events were deleted or reordered"):
        marked.verify_audit(incremental=True)


def test_incremental_verify_checks_only_the_requests_with_events_since_the_mark(marked: Engine) -> None:
    from hitlgate.engine.keys.apikeys import ApiKeys

    ApiKeys(marked).create("soc-agent-9", "agent")  # An event after the mark that belongs to no request.
    report = marked.verify_audit(incremental=True)
    assert report.requests_checked == 1
    assert "tables of 1 request(s) with events since; --full walks from genesis)" in report.describe()


def test_incremental_verify_checks_each_request_since_the_mark_once(marked: Engine) -> None:
    marked.propose(proposal("suspend_service_account", "svc-ci-runner"))
    report = marked.verify_audit(incremental=True)
    assert report.requests_checked == 2


def test_report_names_the_head_it_verified(marked: Engine) -> None:
    head = marked.audit_events()[-1]
    for report in (marked.verify_audit(), marked.verify_audit(incremental=True)):
        assert (report.head_seq, report.head_hash) == (head.seq, head.hash)
        assert head.hash.startswith("sha256:")

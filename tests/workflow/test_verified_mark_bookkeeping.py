"""What ``audit verify`` records for the next incremental run, and what its report says of a short chain.

The verified mark (the highest anchored checkpoint a successful verify
matched, kept next to the anchor) is where ``audit verify --incremental``
starts. A verify told not to record (``record=False``: ``audit verify
--no-record``, an auditor's read-only copy) must leave it alone; a verify of
a chain with no checkpoint yet has nothing anchored to record; an empty
chain's report has no head hash. And a database that contradicts the chain
in many places is reported with the first five and how many more.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import AuditChainError
from tests.workflow._helpers import proposal

PENDING = proposal("suspend_service_account", "svc-ci-runner")


def test_verify_told_not_to_record_leaves_the_mark_alone(engine: Engine) -> None:
    engine.propose(PENDING)
    cp = engine.checkpoint()
    engine.verify_audit(record=False)
    assert engine.anchor.verified_mark() is None
    engine.verify_audit()
    assert engine.anchor.verified_mark() == (cp.seq, cp.head_hash)


def test_verify_before_any_checkpoint_records_nothing(engine: Engine) -> None:
    engine.propose(PENDING)
    report = engine.verify_audit()
    assert report.events == 2 and report.checkpoints == 0
    assert engine.anchor.verified_mark() is None


def test_empty_chain_report_has_no_head_hash(make_engine, tmp_path: Path) -> None:  # noqa: ANN001
    empty = make_engine(config={"state_url": f"sqlite:///{tmp_path / 'empty.db'}", "key_dir": tmp_path / "k2",
                                "audit_anchor": tmp_path / "k2" / "audit-anchor.jsonl"})
    report = empty.verify_audit()
    assert (report.events, report.head_seq, report.head_hash) == (0, 0, "")


@pytest.mark.parametrize(("edited", "suffix"), [(5, ""), (6, "; and 1 more"), (7, "; and 2 more")])
def test_contradictions_beyond_five_are_counted(engine: Engine, edited: int, suffix: str) -> None:
    ids = [engine.propose(PENDING).id for _ in range(edited)]
    with engine.store.engine.begin() as conn:
        conn.execute(t.requests.update().where(t.requests.c.id.in_(ids)).values(status="denied"))
    with pytest.raises(AuditChainError) as err:
        engine.verify_audit()
    message = str(err.value)
    assert f"contradicts it in {edited} place(s): " in message
    shown = message.split(" place(s): ", 1)[1]
    assert len(err.value.problems) == edited
    assert shown == "; ".join(err.value.problems[:5]) + suffix

"""Threat: someone with database write access deletes the chain's tail to hide a consumption, then replays.

Before the fix, deleting the ``consumed_warrants`` row, every audit event
from the ``consumed`` event on, and moving ``audit_head`` back left a chain
that verified (no checkpoint covered the deleted tail: they were signed only
every 50 events), so the same warrant was consumed again and ``audit verify``
said OK. Now issuing and consuming a warrant each sign a checkpoint that is
appended to the anchor file (outside the database) before success is
reported, and the guard, ``verify --consume`` and the warrant path check in
O(1) that the database still holds the anchor's last checkpointed event.
Real SQLite and PostgreSQL, real keys; the attacker uses raw SQL.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import AuditChainError, InvalidWarrant
from tests.workflow import test_cli_workflow as _cli
from tests.workflow._helpers import granted_warrant, proposal

env = _cli.env  # The CLI tests' project fixture (real keys, a SQLite file).
run, write = _cli.run, _cli.write

DOC = proposal("suspend_service_account", "svc-ci-runner")


def _truncate_from(engine: Engine, seq: int, request_id: str, *, warrant: bool = False) -> None:
    """The attack: forget the consumption and delete the chain from ``seq`` on, head moved back."""
    with engine.store.engine.begin() as conn:
        conn.execute(sa.delete(t.consumed).where(t.consumed.c.request_id == request_id))
        if warrant:
            conn.execute(sa.delete(t.warrants).where(t.warrants.c.request_id == request_id))
        conn.execute(sa.delete(t.checkpoints).where(t.checkpoints.c.seq >= seq))
        conn.execute(sa.delete(t.audit_events).where(t.audit_events.c.seq >= seq))
        prev = conn.execute(sa.select(t.audit_events.c.hash).where(t.audit_events.c.seq == seq - 1)).scalar_one()
        conn.execute(t.audit_head.update().where(t.audit_head.c.id == 1).values(seq=seq - 1, hash=prev))
        conn.execute(t.requests.update().where(t.requests.c.id == request_id).values(status="granted"))


def _truncated(engine: Engine, seq: int) -> str:
    """The refusal when the anchor's last checkpoint is at ``seq`` and the chain was cut just before it."""
    return (f"the audit anchor {engine.anchor.path} holds a signed checkpoint at seq {seq}, but the database chain "
            f"ends at seq {seq - 1}: events were deleted from the end of the chain (truncated); refusing until the "
            "database is restored")


def _seq_of(engine: Engine, request_id: str, kind: str) -> int:
    return next(e.seq for e in engine.audit_events(request_id) if e.kind == kind)


def test_tail_truncation_does_not_let_a_consumed_warrant_run_again(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    runs: list[Any] = []
    guard = engine.guard()
    guard.execute(token, DOC["action"], runs.append)
    consumed = _seq_of(engine, req.id, "consumed")
    last = engine.anchor.last()
    assert last is not None and last.seq == consumed, "the consumption is anchored when it happens"
    _truncate_from(engine, consumed, req.id)
    with pytest.raises(InvalidWarrant, match="^" + re.escape("invalid warrant: " + _truncated(engine, consumed))
                                             + "$") as exc:
        guard.execute(token, DOC["action"], runs.append)
    assert exc.value.code == "chain_truncated"
    with pytest.raises(InvalidWarrant, match="truncated") as exc:
        guard.check(token, DOC["action"])
    assert exc.value.code == "chain_truncated"
    assert len(runs) == 1
    with pytest.raises(AuditChainError, match=rf"signed checkpoint at seq {consumed} but the chain ends at seq "
                                              rf"{consumed - 1}: events were deleted from the end"):
        engine.verify_audit()


def test_tail_truncation_does_not_yield_a_second_warrant(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    issued = _seq_of(engine, req.id, "warrant_issued")
    _truncate_from(engine, issued, req.id, warrant=True)
    with pytest.raises(AuditChainError, match="^" + re.escape(_truncated(engine, issued)) + "$") as exc:
        engine.warrant(req.id)
    assert exc.value.code == "chain_truncated"


def test_tail_rewrite_after_the_anchored_event_is_refused(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    issued = _seq_of(engine, req.id, "warrant_issued")
    with engine.store.engine.begin() as conn:
        conn.execute(t.audit_events.update().where(t.audit_events.c.seq == issued).values(hash="sha256:" + "1" * 64))
    message = (f"invalid warrant: event seq {issued} in the database differs from the signed checkpoint at seq "
               f"{issued} in the audit anchor {engine.anchor.path}: the chain was rewritten; refusing until the "
               "database is restored")
    with pytest.raises(InvalidWarrant, match="^" + re.escape(message) + "$") as exc:
        engine.guard().check(token, DOC["action"])
    assert exc.value.code == "chain_rewritten"


def test_tail_truncation_replay_through_the_cli(env: dict[str, str], tmp_path: Path) -> None:
    """The tester's exact steps: sqlite3 deletes the tail; ``verify --consume`` and ``audit verify`` must fail."""
    rid = json.loads(run(env, "propose", write(tmp_path, "p.json", DOC), "--json", code=4).output)["id"]
    run(env, "approve", rid, "--as", "carol", "--key", str(tmp_path / "carol.pem"))
    run(env, "warrant", rid, "--out", str(tmp_path / "w1.jws"))
    action = write(tmp_path, "a.json", DOC["action"])
    run(env, "verify", action, "--warrant", str(tmp_path / "w1.jws"), "--consume")
    db = sqlite3.connect(tmp_path / "state.db")
    with db:
        (seq,) = db.execute("select seq from audit_events where kind='consumed'").fetchone()
        db.execute("delete from consumed_warrants")
        db.execute("delete from audit_checkpoints")
        db.execute("delete from audit_events where seq>=?", (seq,))
        db.execute("update audit_head set seq=?, hash=(select hash from audit_events where seq=?)", (seq - 1, seq - 1))
        db.execute("update requests set status='granted'")
    db.close()
    again = run(env, "verify", action, "--warrant", str(tmp_path / "w1.jws"), "--consume", code=3)
    assert "truncated" in again.output
    assert "events were deleted from the end" in run(env, "audit", "verify", code=3).output


def test_a_chain_deleted_whole_is_refused_as_ending_at_seq_zero(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    issued = _seq_of(engine, req.id, "warrant_issued")
    with engine.store.engine.begin() as conn:
        for table in (t.consumed, t.checkpoints, t.audit_events):
            conn.execute(sa.delete(table))
    message = (f"the audit anchor {engine.anchor.path} holds a signed checkpoint at seq {issued}, but the database "
               "chain ends at seq 0: events were deleted from the end of the chain (truncated); refusing until the "
               "database is restored")
    with pytest.raises(InvalidWarrant, match="^" + re.escape("invalid warrant: " + message) + "$") as exc:
        engine.guard().check(token, DOC["action"])
    assert exc.value.code == "chain_truncated"

"""A chain cut is seen when the anchor's newest checkpoint is not its last line.

Writers append a checkpoint after their commit (and, on SQLite, after
syncing it), so a writer that committed earlier can append after one that
committed later: the file then ends with an older seq. Every write and the
guard compare the chain with the *newest* checkpoint at the end of the
anchor, not merely the last line; otherwise a database writer could cut the
newest consumption off the chain, make the tables forget it, and replay the
warrant (a hostile review did, on SQLite, by delaying one writer's sync).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import AuditChainError, InvalidWarrant
from tests.workflow._helpers import granted_warrant, proposal

DOC = proposal("suspend_service_account", "svc-ci-runner")


def _swap_last_two_lines(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:-2], lines[-1], lines[-2]]))


def test_last_is_the_newest_checkpoint_near_the_end(engine: Engine) -> None:
    granted_warrant(engine, DOC, ("carol",))
    granted_warrant(engine, proposal("suspend_service_account", "svc-reporting"), ("frank",))
    newest = engine.anchor.last()
    assert newest is not None
    _swap_last_two_lines(engine.anchor.path)
    lines = engine.anchor.path.read_text().splitlines()
    assert f'"seq": {newest.seq},' not in lines[-1] and f'"seq": {newest.seq},' in lines[-2]
    assert engine.anchor.last() == newest


def test_a_replay_through_a_cut_behind_an_older_last_line_is_refused(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    runs: list[Any] = []
    engine.guard().execute(token, DOC["action"], runs.append)
    consumed = next(e.seq for e in engine.audit_events(req.id) if e.kind == "consumed")
    assert engine.anchor.last().seq == consumed
    # The warrant's own checkpoint ends the file, as if its writer had appended last.
    _swap_last_two_lines(engine.anchor.path)
    # A database writer cuts the chain from the consumption on and makes the tables forget it.
    with engine.store.engine.begin() as conn:
        conn.execute(sa.delete(t.consumed).where(t.consumed.c.request_id == req.id))
        conn.execute(t.requests.update().where(t.requests.c.id == req.id).values(status="granted"))
        conn.execute(sa.delete(t.checkpoints).where(t.checkpoints.c.seq >= consumed))
        conn.execute(sa.delete(t.audit_events).where(t.audit_events.c.seq >= consumed))
        before = conn.execute(sa.select(t.audit_events.c.hash).where(t.audit_events.c.seq == consumed - 1)).scalar()
        conn.execute(t.audit_head.update().where(t.audit_head.c.id == 1).values(seq=consumed - 1, hash=before))
    with pytest.raises((InvalidWarrant, AuditChainError), match="truncated"):
        engine.guard().execute(token, DOC["action"], runs.append)
    assert len(runs) == 1  # The consumed warrant did not run again.
    with pytest.raises(AuditChainError, match="truncated") as err:
        engine.propose(proposal("suspend_service_account", "svc-reporting"))
    assert err.value.code == "chain_truncated"

"""Reading a request with its votes: one statement on PostgreSQL (the votes aggregated in it), the same votes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event

from hitlgate.engine.approve.workflow import Engine
from tests.workflow._helpers import proposal, vote


def test_a_request_and_its_votes_read_alike_whichever_way(engine: Engine) -> None:
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    req = vote(engine, req, "alice")
    req = vote(engine, req, "bob")
    sent: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    with engine.store.read() as tx:
        sa_event.listen(engine.store.engine, "before_cursor_execute", on_execute)
        try:
            together = tx.get_request(req.id)
        finally:
            sa_event.remove(engine.store.engine, "before_cursor_execute", on_execute)
        apart = tx.votes(req.id)
        alone = tx.get_request(req.id, votes=False)
    assert len(sent) == (1 if engine.store.dialect == "postgresql" else 2)
    assert together.votes == apart and [v.approver for v in apart] == ["alice", "bob"]
    assert together.status == alone.status == "granted" and together.proposal == alone.proposal

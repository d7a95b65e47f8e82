"""Fault: requests committed by another engine while ``audit verify`` streams the chain and then the tables.

Verify reads the chain in chunks and then the tables, in many statements. They
must all see one snapshot: on PostgreSQL, whose default isolation gives each
statement its own, a request committed between the last chunk of events and
the tables would show up in the tables without its events, and verify would
report a database that contradicts its chain when nothing was tampered with.
SQLite's read transaction is one snapshot already; PostgreSQL needs
``REPEATABLE READ``. Real SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event

from tests.workflow._helpers import proposal
from tests.workflow.conftest import EngineFactory


def test_request_committed_while_verify_reads_the_tables_is_not_half_seen(make_engine: EngineFactory) -> None:
    verifier = make_engine()
    writer = make_engine()
    for _ in range(2):
        verifier.propose(proposal("suspend_service_account", "svc-ci-runner"))
    verifier.checkpoint()
    committed: list[str] = []

    def commit_between_chain_and_tables(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The first read of the tables (request ids, in id order) comes after the last chunk of events.
        if not committed and statement.lstrip().upper().startswith("SELECT REQUESTS.ID"):
            committed.append(writer.propose(proposal("suspend_service_account", "svc-ci-runner")).id)

    sa_event.listen(verifier.store.engine, "before_cursor_execute", commit_between_chain_and_tables)
    try:
        report = verifier.verify_audit()
    finally:
        sa_event.remove(verifier.store.engine, "before_cursor_execute", commit_between_chain_and_tables)
    assert len(committed) == 1, "the tables were never read: the hook did not fire"
    assert report.requests_checked == 2
    # The new request is there for the next verify, with its events.
    assert verifier.verify_audit().requests_checked == 3

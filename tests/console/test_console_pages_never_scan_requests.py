"""The console's pages read requests through indexes, never by scanning the table.

The structural proof that the pages stay fast with many requests (the
number is in ``bench/bench_console.py``): every statement the pending list
(unfiltered, by tier, team and target, a later page) and a request page
send to SQLite is captured as it runs and explained; no plan may scan the
requests or votes table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import load_config
from hitlgate.service import console
from tests.cli_project import make_project
from tests.conftest import make_proposal


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine.from_config(load_config(make_project(tmp_path).config)) as eng:
        yield eng


def test_pages_use_indexes_only(engine: Engine) -> None:
    made = [engine.propose(make_proposal("revoke_secret", "svc-payments-key")) for _ in range(3)]
    engine.propose(make_proposal("suspend_service_account", "svc-ci-runner"))
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        sent.append((statement, parameters))

    sa.event.listen(engine.store.engine, "before_cursor_execute", capture)
    try:
        first = console.pending_page(engine, tier=None, team=None, target=None, cursor=None, limit=2)
        assert first.next_cursor is not None
        for params in ({}, {"tier": "dual_approval"}, {"team": "team-payments"}, {"target": "svc-ci-runner"},
                       {"team": "team-nobody", "tier": "single_approval"}, {"cursor": first.next_cursor}):
            assert console.render_pending(engine, "bob", params).status_code == 200, params
        assert console.render_request(engine, "bob", made[0].id).status_code == 200
    finally:
        sa.event.remove(engine.store.engine, "before_cursor_execute", capture)
    queries = [(s, p) for s, p in sent if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) >= 10
    url = engine.config.state_url
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        for statement, params in queries:
            plan = " | ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}", params))
            for table in ("requests", "votes"):
                assert f"SCAN {table}" not in plan, (statement, plan)
    finally:
        db.close()

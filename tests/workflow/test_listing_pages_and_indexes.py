"""Listing requests page by page (keyset cursor) and the indexes the store's queries use.

A listing that reads the whole table, or pages with OFFSET, gets slower with
every stored request; these tests pin that each page continues exactly
where the last ended (no request skipped or repeated, even with equal
creation times) and, on SQLite, that the queries are index range scans.
Real SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve import lifecycle
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger._store_schema import LATEST_VERSION
from hitlgate.engine.ledger.store import ListCursor, Store
from hitlgate.errors import InputError
from tests.workflow._helpers import FakeClock, proposal
from tests.workflow.conftest import EngineFactory


def _fill(engine: Engine, clock: FakeClock, n: int) -> list[str]:
    ids = []
    for i in range(n):
        # Every third request shares its creation time with the one before it: the id breaks the tie.
        if i % 3:
            clock.advance(1)
        target = "svc-ci-runner" if i % 2 else "dev-analytics-key"
        kind = "suspend_service_account" if i % 2 else "rotate_api_key"
        ids.append(engine.propose(proposal(kind, target)).id)
    return ids


def _pages(engine: Engine, status: str | None, size: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = engine.list(status, limit=size, before=cursor)
        if not page:
            return pages
        pages.append([r.id for r in page])
        cursor = ListCursor.after(page[-1])


def test_pages_cover_every_request_once_newest_first(make_engine: EngineFactory, clock: FakeClock) -> None:
    engine = make_engine()
    _fill(engine, clock, 14)
    everything = [r.id for r in engine.list(limit=1000)]
    pages = _pages(engine, None, 4)
    assert [len(p) for p in pages] == [4, 4, 4, 2]
    assert [rid for p in pages for rid in p] == everything
    created = [(r.created_at, r.id) for r in engine.list(limit=1000)]
    assert created == sorted(created, reverse=True)


def test_status_filter_pages_only_that_status(make_engine: EngineFactory, clock: FakeClock) -> None:
    engine = make_engine()
    _fill(engine, clock, 10)
    pending = [r.id for r in engine.list(lifecycle.PENDING, limit=1000)]
    assert pending and all(engine.get(rid).status == lifecycle.PENDING for rid in pending)
    assert [rid for p in _pages(engine, lifecycle.PENDING, 2) for rid in p] == pending


T = "2026-01-01T00:00:00.000000Z"


@pytest.mark.parametrize("bad", [
    "", "nonsense", "2026-01-01~", "~req-1", "2026-13-01T00:00:00.000000Z~req-1", f"{T}~", f"{T}req-1",
    f"{T}~" + "r" * (300 - len(T)),  # 301 characters: longer than any cursor the listing prints.
])
def test_malformed_cursor_is_refused(bad: str) -> None:
    with pytest.raises(InputError, match=r"^--cursor: not a cursor printed by `hitlgate requests` \(TIME~ID\)$"):
        ListCursor.decode(bad)


def test_cursor_splits_at_the_first_tilde_and_allows_300_characters() -> None:
    longest = f"{T}~" + "r" * (299 - len(T))
    assert len(longest) == 300 and ListCursor.decode(longest).request_id == "r" * (299 - len(T))
    assert ListCursor.decode(f"{T}~req~1").request_id == "req~1"


def test_cursor_round_trips(make_engine: EngineFactory, clock: FakeClock) -> None:
    engine = make_engine()
    req = engine.propose(proposal())
    cursor = ListCursor.after(req)
    assert ListCursor.decode(cursor.encode()) == cursor


def test_limit_out_of_range_is_refused(make_engine: EngineFactory) -> None:
    engine = make_engine()
    with pytest.raises(InputError, match=r"limit must be between 1 and 100000, not 0"):
        engine.list(limit=0)


def _plan(store: Store, sql: str) -> str:
    with store.engine.connect() as conn:
        return " | ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))


def test_sqlite_list_and_sweep_queries_use_their_indexes(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        pending = _plan(store, "SELECT * FROM requests WHERE status = 'pending' AND (created_at, id) < ('x', 'y') "
                               "ORDER BY created_at DESC, id DESC LIMIT 100")
        assert "ix_requests_status_created" in pending and "TEMP B-TREE" not in pending
        everything = _plan(store, "SELECT * FROM requests ORDER BY created_at DESC, id DESC LIMIT 100")
        assert "ix_requests_created" in everything and "TEMP B-TREE" not in everything
        sweep = _plan(store, "SELECT id FROM requests WHERE status = 'pending' AND expires_at <= 'x'")
        assert "ix_requests_status_expires" in sweep
        per_request = _plan(store, "SELECT * FROM audit_events WHERE request_id IN ('a', 'b') "
                                   "ORDER BY request_id, seq")
        assert "ix_audit_events_request_seq" in per_request and "TEMP B-TREE" not in per_request
        rare = _plan(store, "SELECT * FROM audit_events WHERE kind IN ('keyring_replaced', 'anchor_reinitialized') "
                            "ORDER BY seq")
        assert "ix_audit_events_rare_kinds" in rare
    finally:
        store.close()


def test_older_database_gets_the_indexes_and_loses_the_superseded_ones(db_url: str) -> None:
    store = Store.open(db_url)
    try:
        # Make it look like a database created before migration 3.
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_requests_status_created")
            conn.exec_driver_sql("CREATE INDEX ix_requests_status ON requests (status)")
            conn.execute(sa.text("DELETE FROM schema_version WHERE version >= 3"))
        assert store.schema_version() == 2
        assert store.migrate() == LATEST_VERSION
        with store.engine.connect() as conn:
            names = {ix["name"] for ix in sa.inspect(conn).get_indexes("requests")}
        assert {"ix_requests_created", "ix_requests_status_created", "ix_requests_status_expires"} <= names
        assert "ix_requests_status" not in names
    finally:
        store.close()


def test_cli_pages_with_the_cursor_it_hints(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hitlgate.cli import cli

    cfg = tmp_path / "hitlgate.yaml"
    cfg.write_text(f"state: sqlite:///{tmp_path / 'state.db'}\nkeys: {tmp_path / 'keys'}\n")
    env = {"HITLGATE_CONFIG": str(cfg)}
    doc = tmp_path / "p.json"
    doc.write_text(json.dumps(proposal("suspend_service_account", "svc-ci-runner")))
    for _ in range(3):
        CliRunner().invoke(cli, ["propose", str(doc)], env=env, catch_exceptions=False)
    first = CliRunner().invoke(cli, ["requests", "--limit", "2"], env=env, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    hint = [line for line in first.output.splitlines() if line.startswith("next page:")]
    assert len(hint) == 1
    cursor = hint[0].split("--cursor ", 1)[1]
    second = CliRunner().invoke(cli, ["--json", "requests", "--limit", "2", "--cursor", cursor], env=env,
                                catch_exceptions=False)
    assert second.exit_code == 0, second.output
    rest = json.loads(second.stdout)
    listed = [line.split()[0] for line in first.output.splitlines() if line.startswith("req-")]
    assert len(listed) == 2 and len(rest) == 1 and rest[0]["id"] not in listed
    bad = CliRunner().invoke(cli, ["--json", "requests", "--cursor", "nonsense"], env=env, catch_exceptions=False)
    assert bad.exit_code == 2 and json.loads(bad.stdout)["error"]["code"]

"""The store streams audit events a chunk at a time (``audit verify`` and ``export`` on millions in constant memory).

Whatever the chunk size (one, a divisor of the count, neither, larger than
it), every event after ``after_seq`` comes back once, in chain order: a
chunk boundary that repeats or skips an event would make a sound chain
look broken, or let a removed event go unnoticed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.store import Transaction


@pytest.fixture
def ten(five_checkpoints: Engine) -> Engine:
    """Ten events (five proposals, five checkpoints)."""
    return five_checkpoints


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 10, 11])
def test_every_event_once_in_chain_order(ten: Engine, chunk: int) -> None:
    with ten.store.read() as tx:
        events = list(tx.iter_events(chunk=chunk))
        assert [e.seq for e in tx.iter_events(after_seq=4, chunk=chunk)] == list(range(5, 11))
        assert [e.seq for e in tx.iter_events(after_seq=10, chunk=chunk)] == []
    assert [e.seq for e in events] == list(range(1, 11))
    assert [e.hash for e in events] == [e.hash for e in ten.audit_events()]


@contextmanager
def _unordered_rows_reversed(tx: Transaction) -> Iterator[None]:
    """On SQLite, return the rows of every SELECT without an ORDER BY in reverse (PRAGMA reverse_unordered_selects).

    SQLite happens to return a primary-key range in key order; a query that
    relies on that, not on ORDER BY, is wrong on PostgreSQL. The pragma
    makes the omission visible on SQLite. PostgreSQL has no such switch; the
    reads run unchanged there.
    """
    sqlite = tx.conn.dialect.name == "sqlite"
    if sqlite:
        tx.conn.exec_driver_sql("PRAGMA reverse_unordered_selects = ON")
    try:
        yield
    finally:
        if sqlite:
            tx.conn.exec_driver_sql("PRAGMA reverse_unordered_selects = OFF")


def test_events_and_checkpoints_are_ordered_by_the_query_not_by_the_table(ten: Engine) -> None:
    with ten.store.read() as tx, _unordered_rows_reversed(tx):
        assert [e.seq for e in tx.iter_events(chunk=4)] == list(range(1, 11))
        assert [cp.seq for cp in tx.iter_checkpoints(chunk=2)] == [2, 4, 6, 8, 10]

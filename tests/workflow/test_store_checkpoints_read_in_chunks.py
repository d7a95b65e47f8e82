"""The store streams checkpoints a chunk at a time (``audit verify`` on millions of them in constant memory).

Whatever the chunk size (one, a divisor of the count, larger than it),
every stored checkpoint comes back once, in seq order, and ``from_seq``
starts at that seq itself.
"""

from __future__ import annotations

import pytest

from hitlgate.engine.approve.workflow import Engine


@pytest.fixture
def five(five_checkpoints: Engine) -> Engine:
    """Five checkpoints, at seq 2, 4, 6, 8 and 10."""
    return five_checkpoints


@pytest.mark.parametrize("chunk", [1, 2, 5, 7])
def test_every_checkpoint_once_in_order(five: Engine, chunk: int) -> None:
    with five.store.read() as tx:
        assert [cp.seq for cp in tx.iter_checkpoints(chunk=chunk)] == [2, 4, 6, 8, 10]
        assert [cp.seq for cp in tx.iter_checkpoints(from_seq=6, chunk=chunk)] == [6, 8, 10]
        assert [cp.seq for cp in tx.iter_checkpoints(from_seq=7, chunk=chunk)] == [8, 10]
        first = next(iter(tx.iter_checkpoints(chunk=chunk)))
    assert (first.seq, first.head_hash) == (2, five.audit_events()[1].hash)

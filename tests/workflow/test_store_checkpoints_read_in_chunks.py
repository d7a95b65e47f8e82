"""The store streams checkpoints a chunk at a time (``audit verify`` on millions of them in constant memory).

Whatever the chunk size (one, a divisor of the count, larger than it),
every stored checkpoint comes back once, in seq order, and ``from_seq``
starts at that seq itself.
"""

from __future__ import annotations

import pytest

from hitlgate.engine.approve.workflow import Engine
from tests.workflow._helpers import proposal


@pytest.fixture
def five(make_engine) -> Engine:  # noqa: ANN001
    engine: Engine = make_engine()
    for _ in range(5):
        engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
        engine.checkpoint()
    return engine


@pytest.mark.parametrize("chunk", [1, 2, 5, 7])
def test_every_checkpoint_once_in_order(five: Engine, chunk: int) -> None:
    with five.store.read() as tx:
        assert [cp.seq for cp in tx.iter_checkpoints(chunk=chunk)] == [2, 4, 6, 8, 10]
        assert [cp.seq for cp in tx.iter_checkpoints(from_seq=6, chunk=chunk)] == [6, 8, 10]
        assert [cp.seq for cp in tx.iter_checkpoints(from_seq=7, chunk=chunk)] == [8, 10]
        first = next(iter(tx.iter_checkpoints(chunk=chunk)))
    assert (first.seq, first.head_hash) == (2, five.audit_events()[1].hash)

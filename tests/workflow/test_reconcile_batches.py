"""Fault: `audit verify` reconciles tables with the chain in batches; a boundary must not skip or repeat a request.

``Transaction.iter_request_ids`` pages through every request by keyset. A
request skipped at a boundary would never be reconciled, so a row edited
behind the chain's back would go unnoticed; one repeated would be counted
twice.
"""

from __future__ import annotations

import pytest

from hitlgate.engine.approve.workflow import Engine
from tests.workflow._helpers import proposal


@pytest.mark.parametrize("count", [4, 5])
def test_every_request_is_listed_once_across_batches(engine: Engine, count: int) -> None:
    ids = sorted(engine.propose(proposal("suspend_service_account", "svc-ci-runner")).id for _ in range(count))
    with engine.store.read() as tx:
        batches = list(tx.iter_request_ids(chunk=2))
    assert [len(b) for b in batches] == [2] * (count // 2) + ([1] if count % 2 else [])
    assert [rid for b in batches for rid in b] == ids
    with engine.store.read() as tx:
        assert list(tx.iter_request_ids(chunk=count)) == [ids]


def test_an_empty_store_yields_no_batch(engine: Engine) -> None:
    with engine.store.read() as tx:
        assert list(tx.iter_request_ids(chunk=2)) == []

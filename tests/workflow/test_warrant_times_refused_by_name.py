"""A warrant's times must be timezone-aware, and a naive one is refused by its name.

The store keeps times in UTC; a naive time's zone is a guess. The warrant
row's insert and the warrant record each name the time they refuse, and a
refused insert leaves no row behind. An aware time in another zone is stored
and returned as the same instant in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.store import WarrantRecord
from tests.workflow._helpers import proposal, vote

NAIVE = datetime(2025, 6, 2, 9, 0, 0)  # noqa: DTZ001 - the refused input
AWARE = datetime(2025, 6, 2, 9, 0, 0, tzinfo=UTC)


def _granted(engine: Engine) -> str:
    return vote(engine, engine.propose(proposal("suspend_service_account", "svc-ci-runner")), "carol").id


@pytest.mark.parametrize("field", ["issued_at", "expires_at"])
def test_naive_warrant_time_is_refused_by_name_before_the_insert(engine: Engine, field: str) -> None:
    request_id = _granted(engine)
    times = {"issued_at": AWARE, "expires_at": AWARE + timedelta(minutes=5), field: NAIVE}
    with pytest.raises(ValueError, match=f"^{field} must be timezone-aware$"), engine.store.write() as tx:
        tx.insert_warrant(jti="jti-naive", request_id=request_id, token="t", kid="k", **times)
    with engine.store.read() as tx:
        assert tx.warrant_for(request_id) is None


def test_warrant_times_in_another_zone_are_returned_in_utc(engine: Engine) -> None:
    request_id = _granted(engine)
    plus2 = timezone(timedelta(hours=2))
    with engine.store.write() as tx:
        record = tx.insert_warrant(jti="jti-zone", request_id=request_id, token="t", kid="k",
                                   issued_at=AWARE.astimezone(plus2),
                                   expires_at=(AWARE + timedelta(minutes=5)).astimezone(plus2))
    assert (record.issued_at, record.expires_at) == (AWARE, AWARE + timedelta(minutes=5))
    assert record.issued_at.tzinfo is UTC and record.expires_at.tzinfo is UTC


@pytest.mark.parametrize("field", ["issued_at", "expires_at", "consumed_at"])
def test_warrant_record_refuses_a_naive_time_by_name(field: str) -> None:
    times: dict[str, datetime] = {"issued_at": AWARE, "expires_at": AWARE, "consumed_at": AWARE, field: NAIVE}
    with pytest.raises(ValueError, match=f"^{field} must be timezone-aware$"):
        WarrantRecord(jti="j", request_id="r", token="t", kid="k", **times)

"""Audit times are written in UTC whatever the machine's time zone, and only aware UTC times are chained.

The hash of an event covers its time as text: a machine set to Tokyo time
that wrote local times would chain events another machine cannot
re-hash, and a naive or offset time handed to the chain is refused by
name rather than guessed at.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from hitlgate.engine.ledger.audit import GENESIS_HASH, event_after, format_time, parse_time
from hitlgate.errors import InputError

from .conftest import NOW, in_local_zone

TOKYO_NOON = datetime(2026, 11, 27, 12, 0, 0, 250000, tzinfo=timezone(timedelta(hours=9)))


@pytest.fixture
def tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone set to Asia/Tokyo (UTC+9), restored afterwards."""
    yield from in_local_zone(monkeypatch, "Asia/Tokyo")


def test_a_time_is_spelled_in_utc_whatever_the_local_zone(tokyo: None) -> None:
    assert time.localtime(0).tm_hour == 9  # The zone really is in effect.
    assert format_time(TOKYO_NOON) == "2026-11-27T03:00:00.250000Z"
    assert parse_time(format_time(TOKYO_NOON)) == TOKYO_NOON


@pytest.mark.parametrize("at", [NOW.replace(tzinfo=None), TOKYO_NOON, "2026-11-27T03:00:00.250000Z"],
                         ids=["naive", "an-offset", "text"])
def test_only_an_aware_utc_time_starts_an_event(at: object) -> None:
    with pytest.raises(InputError, match="^" + re.escape("audit event time must be a timezone-aware UTC datetime")
                                         + "$"):
        event_after(0, GENESIS_HASH, kind="approved", request_id="req-1", payload={}, at=at)  # type: ignore[arg-type]


def test_a_zero_offset_under_another_name_is_utc() -> None:
    gmt = NOW.replace(tzinfo=timezone(timedelta(0), "GMT"))
    event = event_after(0, GENESIS_HASH, kind="approved", request_id="req-1", payload={}, at=gmt)
    assert event.at == NOW and event.seq == 1 and event.prev_hash == GENESIS_HASH

"""The keyring's state file writes its key times in UTC, whatever the machine's local time zone.

A key's ``created_at`` and ``retired_at`` decide which warrants its grace
period still covers. Written in local time with a ``Z`` (UTC) suffix, a
machine west of Greenwich would move a retired key's grace period hours
later, so a retired key would verify warrants after its time.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hitlgate.engine.keys.keyring import EngineKeyring, KeyRecord
from hitlgate.errors import InputError

CREATED = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
RETIRED = datetime(2026, 1, 2, 23, 30, 0, tzinfo=UTC)


def test_key_times_are_written_in_utc_under_another_local_zone(
    keyring: EngineKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = dataclasses.replace(keyring.records()[0], created_at=CREATED, retired_at=RETIRED)
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        written = record.to_dict()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert written["created_at"] == "2026-01-01T12:00:00.123456Z"
    assert written["retired_at"] == "2026-01-02T23:30:00.000000Z"
    assert KeyRecord.from_dict(written) == record


@pytest.mark.parametrize(
    "at", [datetime(2026, 1, 1, 12), datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=1)))],
    ids=["naive", "another-offset"],
)
def test_a_keyring_asked_about_a_time_not_in_utc_refuses_it(keyring: EngineKeyring, at: datetime) -> None:
    # Grace periods are compared in UTC: a naive or offset time would shift a retired key's window.
    for call in (lambda: keyring.public_keys(at), lambda: keyring.rotate(at)):
        with pytest.raises(InputError, match="^times must be timezone-aware UTC datetimes$"):
            call()

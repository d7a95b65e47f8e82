"""Fault: an approval statement built with a field that cannot be signed as it stands.

Each refusal names the field and what it must be, word for word (scripts and
reviewers read these), and the limits are exact: an id of the largest length
is a statement, one character more is not; a reason may hold newlines, not
other control characters. The signed time is always written in UTC, whatever
the local time zone of the machine that signs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from hitlgate.engine.approve.approvals import MAX_ID_LENGTH, MAX_REASON_LENGTH, format_time
from hitlgate.errors import ValidationError

from .conftest import NOW, in_local_zone, make_statement

_STATEMENT = r"^invalid approval statement: 1 problem\(s\)\n  - "


@pytest.mark.parametrize("field", ["request_id", "approver"])
def test_id_of_the_largest_length_is_accepted_and_one_more_is_refused(field: str) -> None:
    assert getattr(make_statement(**{field: "x" * MAX_ID_LENGTH}), field) == "x" * MAX_ID_LENGTH
    with pytest.raises(ValidationError, match=_STATEMENT + rf"{field}: must be a non-empty string of at most "
                                              rf"{MAX_ID_LENGTH} characters$"):
        make_statement(**{field: "x" * (MAX_ID_LENGTH + 1)})


@pytest.mark.parametrize("control", ["\r", "\t", "\x00", "\x1b", "\u2028"])
def test_reason_with_a_control_character_is_refused(control: str) -> None:
    with pytest.raises(ValidationError,
                       match=_STATEMENT + r"reason: must not contain control characters other than newlines$"):
        make_statement(reason=f"line one{control}line two")


def test_reason_over_several_lines_is_accepted() -> None:
    reason = "checked with the owner\nticket INC-7\n"
    assert make_statement(reason=reason).reason == reason


@pytest.mark.parametrize("digest", ["", "sha256:" + "A" * 64, "sha1:" + "a" * 40, "sha256:" + "a" * 63, 7])
def test_malformed_action_digest_is_refused(digest: object) -> None:
    with pytest.raises(ValidationError,
                       match=_STATEMENT + r"action_digest: must be sha256: followed by 64 lowercase hex digits$"):
        make_statement(action_digest=digest)


@pytest.mark.parametrize("at", [NOW.replace(tzinfo=None), NOW.astimezone(timezone(timedelta(hours=2))), "2025-01-31"])
def test_time_that_is_not_aware_utc_is_refused(at: object) -> None:
    with pytest.raises(ValidationError, match=_STATEMENT + r"at: must be a timezone-aware UTC datetime$"):
        make_statement(at=at)


@pytest.fixture
def local_zone_new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from in_local_zone(monkeypatch, "America/New_York")


@pytest.mark.usefixtures("local_zone_new_york")
def test_signed_time_is_written_in_utc_whatever_the_local_zone() -> None:
    assert time.localtime(NOW.timestamp()).tm_hour != NOW.hour  # The zone did change.
    assert make_statement().to_dict()["at"] == "2025-01-31T12:00:00Z"
    assert format_time(datetime(2025, 1, 31, 7, 0, tzinfo=timezone(timedelta(hours=-5)))) == "2025-01-31T12:00:00Z"


def test_reason_of_the_largest_length_is_accepted_and_one_more_is_refused() -> None:
    assert len(make_statement(reason="r" * MAX_REASON_LENGTH).reason) == MAX_REASON_LENGTH
    with pytest.raises(ValidationError, match=_STATEMENT + rf"reason: must be a string of at most {MAX_REASON_LENGTH} "
                                              r"characters$"):
        make_statement(reason="r" * (MAX_REASON_LENGTH + 1))

"""``since`` takes the times its own refusal gives as examples: RFC 3339 UTC, whole or fractional seconds.

Regression: the refusal said "such as 2026-01-31T12:00:00Z", but only the
store's microsecond spelling (``...00.000000Z``) was read, so a caller who
followed the message was refused again. Now ``since`` reads RFC 3339 in UTC
(``Z``) with whole seconds or up to six fractional digits; other zones,
lowercase, more digits and impossible dates stay refused, 400
``invalid_query`` naming ``since``. Stored times and signed statements keep
their one spelling each (their tests are in tests/workflow and tests/crypto).
On the real ASGI app with a real SQLite store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from hitlgate.engine.approve.approvals import parse_time as parse_statement_time
from hitlgate.errors import InputError, ValidationError
from hitlgate.service import _query
from tests.service.conftest import viewer_gets


@pytest.mark.parametrize(("text", "want"), [
    ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
    ("2026-01-31T12:00:00.5Z", datetime(2026, 1, 31, 12, 0, 0, 500_000, tzinfo=UTC)),
    ("2026-01-31T12:00:00.250Z", datetime(2026, 1, 31, 12, 0, 0, 250_000, tzinfo=UTC)),
    ("2026-01-31T12:00:00.000001Z", datetime(2026, 1, 31, 12, 0, 0, 1, tzinfo=UTC)),
    ("2026-01-31T12:00:00.000000Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),  # The store's spelling, as before.
    ("2024-02-29T23:59:59.999999Z", datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)),
])
def test_rfc3339_utc_with_or_without_fractional_seconds_is_read(text: str, want: datetime) -> None:
    got = _query.since(text)
    assert got == want and got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", [
    "2026-01-31T12:00:00.1234567Z",  # More digits than a time holds: not rounded, refused.
    "2026-01-31T12:00:00.Z", "2026-01-31T12:00:00,5Z",
    "2026-01-31T12:00:00+00:00", "2026-01-31T12:00:00+01:00", "2026-01-31T12:00:00",  # Only Z says UTC here.
    "2026-01-31t12:00:00z", "2026-01-31 12:00:00Z", "2026-01-31", "20260131T120000Z",
    "2026-02-30T12:00:00Z", "2026-01-31T24:00:00Z", "2026-01-31T12:00:60Z",
    "２０２６-01-31T12:00:00Z",  # Fullwidth digits: not RFC 3339's ASCII digits.
    "2026-01-31T12:00:00Z\n", " 2026-01-31T12:00:00Z", "yesterday", "",
    # A year below 1000 is stored without leading zeros and would sort after every real time.
    "0999-12-31T00:00:00Z", "0001-01-01T00:00:00Z",
])
def test_other_spellings_are_refused_naming_since_with_accepted_examples(text: str) -> None:
    with pytest.raises(InputError) as caught:
        _query.since(text)
    assert caught.value.code == "invalid_query"
    message = caught.value.message
    assert message.startswith("since: ")
    for example in _query.SINCE_EXAMPLES:
        assert example in message
        _query.since(example)  # Every example the message gives is accepted.


def test_the_signed_statements_time_message_gives_an_example_it_accepts() -> None:
    # The other "RFC 3339 UTC time like ..." message: a signed statement keeps whole seconds only
    # (its bytes are signed, one spelling), and its example is that spelling.
    with pytest.raises(ValidationError) as caught:
        parse_statement_time("2026-01-31T12:00:00.250Z", "at")
    example = caught.value.problems[0].rsplit(" ", 1)[-1]
    assert parse_statement_time(example, "at") == datetime(2025, 1, 31, 12, tzinfo=UTC)


def _list(tmp_path: Path, queries: list[dict[str, str]]) -> list[tuple[int, dict[str, Any]]]:
    return viewer_gets(tmp_path, ["/v1/requests?" + urlencode(params) for params in queries])


def test_the_listing_filters_by_since_in_every_accepted_spelling(tmp_path: Path) -> None:
    before = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    after = before + timedelta(days=1)
    spellings = [f"{at:%Y-%m-%dT%H:%M:%S}{frac}Z" for at in (before, after) for frac in ("", ".5", ".250", ".000000")]
    answers = _list(tmp_path, [{"since": s} for s in spellings] + [{"since": "2026-01-31T12:00:00+00:00"}])
    assert [len(doc["requests"]) for status, doc in answers[:-1] if status == 200] == [1, 1, 1, 1, 0, 0, 0, 0]
    status, doc = answers[-1]
    assert status == 400 and doc["error"]["code"] == "invalid_query"
    assert doc["error"]["message"] == ("since: not an RFC 3339 UTC time such as 2026-01-31T12:00:00Z or "
                                       "2026-01-31T12:00:00.250Z")

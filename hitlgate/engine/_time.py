"""Clocks. Everything time-dependent takes an injectable clock so tests can move time."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

#: A clock returns the current time as an aware UTC datetime.
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def require_utc(value: datetime, what: str = "time") -> datetime:
    """Return ``value`` converted to UTC; naive datetimes are refused (their zone is a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value.astimezone(UTC)


_FMT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: The one stored spelling, checked before parsing: ``fromisoformat`` alone
#: would also accept other ISO 8601 forms (offsets, no microseconds).
_TEXT_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def format_time(value: datetime) -> str:
    """Fixed-width UTC text form of an aware datetime (how the store writes times)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("times stored must be timezone-aware")
    utc = value.astimezone(UTC)
    if utc.year < 1000:
        # isoformat pads the year to four digits, strftime does not: keep
        # the one spelling the store has always written.
        return utc.strftime(_FMT)
    # The same text as strftime(_FMT), several times cheaper.
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`; anything but its exact spelling raises ``ValueError``."""
    if _TEXT_RE.fullmatch(text) is None:
        raise ValueError(f"time data {text!r} does not match format {_FMT!r}")
    # fromisoformat reads the trailing Z as UTC (Python 3.11+); strptime
    # costs ten times as much and is called for every stored time read back.
    return datetime.fromisoformat(text)

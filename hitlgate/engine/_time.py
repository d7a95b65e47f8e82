"""Clocks. Everything time-dependent takes an injectable clock so tests can move time."""

from __future__ import annotations

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


def format_time(value: datetime) -> str:
    """Fixed-width UTC text form of an aware datetime (how the store writes times)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("times stored must be timezone-aware")
    return value.astimezone(UTC).strftime(_FMT)


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`."""
    return datetime.strptime(text, _FMT).replace(tzinfo=UTC)

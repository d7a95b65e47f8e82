"""Query parameters shared by the HTTP API and the console: one reading, one wording, ``invalid_query`` on refusal.

Each check raises :class:`~hitlgate.errors.InputError` (code
``invalid_query``) with a message that names the query parameter (never the
CLI's ``--cursor`` option) and says what to send instead:

1. :func:`single_valued`: a single-valued parameter given more than once is
   refused, not last-one-wins (a filter a proxy or client library appends
   must not change what a query means unnoticed);
2. :func:`cursor`: a cursor must be one a listing printed (``next_cursor``);
3. :func:`since`: an RFC 3339 time in UTC (``Z``), whole seconds or up to six
   digits of fractional seconds. Only this query parameter reads that
   wider spelling: stored times (:func:`hitlgate.engine._time.parse_time`)
   and signed statements (:func:`hitlgate.engine.approve.approvals.parse_time`)
   keep their one spelling each, since their bytes are compared or signed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from hitlgate.engine.ledger.store import ListCursor
from hitlgate.errors import InputError

#: RFC 3339 in UTC: date, ``T``, whole seconds, up to six fractional digits (what a datetime holds), ``Z``.
#: Years from 1000: stored times are compared as text, and a year below 1000 is stored without its
#: leading zeros ("999-..."), so it would sort after "2026-..." and filter out everything.
_SINCE_RE = re.compile(r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")
#: The examples every refusal of ``since`` gives: both are accepted (a test holds them to it).
SINCE_EXAMPLES = ("2026-01-31T12:00:00Z", "2026-01-31T12:00:00.250Z")


def single_valued(given: Iterable[tuple[str, str]], names: Iterable[str]) -> None:
    """Refuse a query (its ``(name, value)`` pairs, as sent) that gives one of ``names`` more than once."""
    wanted = frozenset(names)
    seen: set[str] = set()
    for name, _value in given:
        if name in wanted:
            if name in seen:
                # Even the same value twice: one spelling per query.
                raise InputError(f"{name}: given more than once; send each query parameter at most once",
                                 code="invalid_query")
            seen.add(name)


def cursor(text: str) -> ListCursor:
    """The ``cursor`` query parameter as a listing cursor: only one a listing printed (``next_cursor``)."""
    try:
        return ListCursor.decode(text)
    except InputError:
        raise InputError("cursor: not a cursor from a listing's next_cursor (TIME~ID); "
                         "start again without cursor", code="invalid_query") from None


def since(text: str) -> datetime:
    """The ``since`` query parameter: RFC 3339 UTC, with or without fractional seconds (up to 6 digits)."""
    if _SINCE_RE.fullmatch(text) is not None:
        try:
            # The pattern pins the spelling; fromisoformat reads it (Z as UTC) and refuses
            # impossible dates and times (February 30, hour 24, second 60).
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    raise InputError(f"since: not an RFC 3339 UTC time such as {SINCE_EXAMPLES[0]} or {SINCE_EXAMPLES[1]}",
                     code="invalid_query")

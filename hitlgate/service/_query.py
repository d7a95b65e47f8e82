"""Query parameters shared by the HTTP API and the console: one reading, one wording, ``invalid_query`` on refusal.

Each check raises :class:`~hitlgate.errors.InputError` (code
``invalid_query``) with a message that names the query parameter and says
what to send instead:

1. :func:`since`: an RFC 3339 time in UTC (``Z``), whole seconds or up to six
   digits of fractional seconds. Only this query parameter reads that
   wider spelling: stored times (:func:`hitlgate.engine._time.parse_time`)
   and signed statements (:func:`hitlgate.engine.approve.approvals.parse_time`)
   keep their one spelling each, since their bytes are compared or signed.
"""

from __future__ import annotations

import re
from datetime import datetime

from hitlgate.errors import InputError

#: RFC 3339 in UTC: date, ``T``, whole seconds, up to six fractional digits (what a datetime holds), ``Z``.
_SINCE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")
#: The examples every refusal of ``since`` gives: both are accepted (a test holds them to it).
SINCE_EXAMPLES = ("2026-01-31T12:00:00Z", "2026-01-31T12:00:00.250Z")


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

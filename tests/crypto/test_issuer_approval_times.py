"""The issuer writes an approval's time as RFC 3339 text, and refuses a naive one.

``WarrantIssuer.issue`` copies the approvals into the warrant as plain JSON:
an aware ``datetime`` becomes RFC 3339 text in UTC (the same instant,
whatever its zone), and a naive one, whose zone is a guess, is refused
before anything is signed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hitlgate.engine.keys.warrants import WarrantIssuer, WarrantVerifier
from hitlgate.errors import InputError

from .conftest import APPROVALS, DIGEST, NOW, REVISION


def _issue(issuer: WarrantIssuer, at: datetime) -> str:
    approvals = [dict(APPROVALS[0], at=at), APPROVALS[1]]
    return issuer.issue(request_id="req-0001", action_digest=DIGEST, tier="dual_approval", approvals=approvals,
                        policy_revision=REVISION, now=NOW).token


def test_aware_approval_time_is_written_as_utc_text(issuer: WarrantIssuer, verifier: WarrantVerifier) -> None:
    at = datetime(2025, 1, 31, 11, 58, tzinfo=UTC)
    token = _issue(issuer, at.astimezone(timezone(timedelta(hours=-5))))
    claims = verifier.verify(token, action_digest=DIGEST, now=NOW)
    assert claims.approvals[0]["at"] == "2025-01-31T11:58:00Z"


def test_naive_approval_time_is_refused_before_signing(issuer: WarrantIssuer) -> None:
    with pytest.raises(InputError, match="^approval times must be timezone-aware$"):
        _issue(issuer, datetime(2025, 1, 31, 11, 58))  # noqa: DTZ001 - the refused input

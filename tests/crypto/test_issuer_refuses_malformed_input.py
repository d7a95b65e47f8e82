"""The issuer signs nothing from malformed input: a workflow bug cannot mint a warrant.

``WarrantIssuer.issue`` checks the request id, the action digest, the policy
revision, the tier and the approvals before it signs, and refuses each by
name. It copies the approvals into the warrant as plain JSON: an aware
``datetime`` becomes RFC 3339 text in UTC (the same instant, whatever its
zone), and a naive one, whose zone is a guess, is refused.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from hitlgate.engine.keys.warrants import MAX_ID_LENGTH, MAX_TTL_SECONDS, IssuedWarrant, WarrantIssuer, WarrantVerifier
from hitlgate.errors import ApprovalError, InputError

from .conftest import APPROVALS, DIGEST, NOW, REVISION


def _issue(issuer: WarrantIssuer, **changes: Any) -> IssuedWarrant:
    """A genuine dual-approval warrant issued at NOW, with ``changes`` to its arguments."""
    args: dict[str, Any] = {"request_id": "req-0001", "action_digest": DIGEST, "tier": "dual_approval",
                            "approvals": APPROVALS, "policy_revision": REVISION, "now": NOW}
    return issuer.issue(**{**args, **changes})


def _approved_at(at: datetime) -> list[dict[str, Any]]:
    return [dict(APPROVALS[0], at=at), APPROVALS[1]]


def test_aware_approval_time_is_written_as_utc_text(issuer: WarrantIssuer, verifier: WarrantVerifier) -> None:
    at = datetime(2025, 1, 31, 11, 58, tzinfo=UTC)
    token = _issue(issuer, approvals=_approved_at(at.astimezone(timezone(timedelta(hours=-5))))).token
    claims = verifier.verify(token, action_digest=DIGEST, now=NOW)
    assert claims.approvals[0]["at"] == "2025-01-31T11:58:00Z"


def test_naive_approval_time_is_refused_before_signing(issuer: WarrantIssuer) -> None:
    with pytest.raises(InputError, match="^approval times must be timezone-aware$"):
        _issue(issuer, approvals=_approved_at(datetime(2025, 1, 31, 11, 58)))  # noqa: DTZ001 - the refused input


@pytest.mark.parametrize("request_id", ["", "r" * (MAX_ID_LENGTH + 1), None, 7])
def test_malformed_request_id_is_refused(issuer: WarrantIssuer, request_id: object) -> None:
    refused = f"^request_id must be a non-empty string of at most {MAX_ID_LENGTH} characters$"
    with pytest.raises(InputError, match=refused):
        _issue(issuer, request_id=request_id)


def test_request_id_of_the_largest_length_is_signed(issuer: WarrantIssuer, verifier: WarrantVerifier) -> None:
    token = _issue(issuer, request_id="r" * MAX_ID_LENGTH).token
    assert verifier.verify(token, action_digest=DIGEST, now=NOW).request_id == "r" * MAX_ID_LENGTH


@pytest.mark.parametrize("digest", ["", "sha256:" + "A" * 64, "sha256:" + "1" * 63, "md5:" + "1" * 64, None])
def test_malformed_action_digest_is_refused(issuer: WarrantIssuer, digest: object) -> None:
    with pytest.raises(InputError, match="^action_digest must be sha256: followed by 64 lowercase hex digits$"):
        _issue(issuer, action_digest=digest)


@pytest.mark.parametrize("revision", ["", None])
def test_missing_policy_revision_is_refused(issuer: WarrantIssuer, revision: object) -> None:
    with pytest.raises(InputError, match="^policy_revision must be a non-empty string$"):
        _issue(issuer, policy_revision=revision)


@pytest.mark.parametrize("tier", ["deny", "superuser"])
def test_tier_without_a_warrant_is_refused(issuer: WarrantIssuer, tier: str) -> None:
    with pytest.raises(ApprovalError, match=f"^refusing to issue a warrant for tier '{tier}'$"):
        _issue(issuer, tier=tier)


@pytest.mark.parametrize("approvals", ["alice", b"alice", {"approver": "alice"}, None])
def test_approvals_that_are_not_a_sequence_are_refused(issuer: WarrantIssuer, approvals: object) -> None:
    with pytest.raises(InputError, match="^approvals must be a sequence of mappings$"):
        _issue(issuer, approvals=approvals)


@pytest.mark.parametrize("now", [NOW.replace(tzinfo=None), NOW.astimezone(timezone(timedelta(hours=2)))])
def test_issue_time_must_be_utc(issuer: WarrantIssuer, now: datetime) -> None:
    with pytest.raises(InputError, match="^now must be a timezone-aware UTC datetime$"):
        _issue(issuer, now=now)


def test_issue_without_a_time_uses_utc_now_whatever_the_local_zone(
    issuer: WarrantIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        before = int(time.time())
        issued = _issue(issuer, now=None)
        after = int(time.time())
    finally:
        monkeypatch.undo()
        time.tzset()
    assert before <= int(issued.expires_at.timestamp()) - issuer.ttl_seconds <= after


@pytest.mark.parametrize(("lifetime", "refused"), [(0, True), (1, False), (MAX_TTL_SECONDS, False),
                                                   (MAX_TTL_SECONDS + 1, True)])
def test_warrant_lifetime_bounds(issuer: WarrantIssuer, lifetime: int, refused: bool) -> None:
    # A warrant must expire after it is issued, and within MAX_TTL_SECONDS of it (inclusive).
    expires_at = NOW + timedelta(seconds=lifetime)
    if refused:
        with pytest.raises(ApprovalError, match=f"^refusing to issue a warrant expiring at .*: it must expire after "
                                                f".* and within {MAX_TTL_SECONDS} seconds of it$"):
            _issue(issuer, expires_at=expires_at)
    else:
        assert _issue(issuer, expires_at=expires_at).expires_at == expires_at


def test_approvals_that_are_not_json_are_refused(issuer: WarrantIssuer) -> None:
    approvals = [dict(APPROVALS[0], reason=float("nan")), APPROVALS[1]]
    with pytest.raises(InputError, match="^approvals are not JSON-serialisable: "):
        _issue(issuer, approvals=approvals)


def test_lifetime_refusal_names_the_issue_time_in_utc_when_none_was_given(issuer: WarrantIssuer) -> None:
    past = datetime(2020, 1, 1, tzinfo=UTC)
    refused = (r"^refusing to issue a warrant expiring at 2020-01-01T00:00:00\+00:00: it must expire after "
               r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00 and within ")
    with pytest.raises(ApprovalError, match=refused):
        _issue(issuer, now=None, expires_at=past)

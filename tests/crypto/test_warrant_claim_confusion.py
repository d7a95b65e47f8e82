"""Claim confusion: engine-signed tokens that claim too little quorum, the wrong audience or version."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.engine.keys.warrants import MAX_ID_LENGTH, WarrantIssuer, WarrantVerifier
from hitlgate.errors import ApprovalError, InvalidWarrant

from .conftest import APPROVALS, AUDIENCE, DIGEST, ISSUER, NOW, REVISION, genuine_claims, sign_token


def _engine_signed(keyring: EngineKeyring, **claims: Any) -> str:
    # Signed by the real engine key: models an issuer bug or a confused
    # deployment; the verifier's claim checks must hold regardless.
    _, key = keyring.signing_key()
    return sign_token(key, genuine_claims(**claims), kid=keyring.current_kid)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"tier": "deny"}, "tier 'deny' does not permit action"),
        ({"tier": "superuser"}, "tier 'superuser' does not permit action"),
        ({"approvals": APPROVALS[:1]}, "tier dual_approval needs 2 distinct approvals, the warrant carries 1"),
        ({"approvals": [APPROVALS[0], APPROVALS[0]]}, "approver 'alice' is counted twice"),
        ({"tier": "single_approval", "approvals": []},
         "tier single_approval needs 1 distinct approvals, the warrant carries 0"),
        ({"approvals": [{"who": "alice"}, APPROVALS[1]]}, r"approvals\[0\] must be an object naming its approver"),
        ({"approvals": "alice,bob"}, "approvals must be a list"),
        ({"aud": "another-executor"}, "audience 'another-executor' is not 'hitlgate-executor'"),
        ({"aud": [AUDIENCE]}, "claim aud must be a non-empty string"),
        ({"iss": "rogue-engine"}, "issuer 'rogue-engine' is not 'hitlgate'"),
        ({"ver": 2}, r"warrant version 2 is not supported \(expected 1\)"),
        ({"ver": True}, "claim ver must be an integer"),
        ({"sub": ""}, "claim sub must be a non-empty string"),
        ({"policy_revision": ""}, "claim policy_revision must be a non-empty string"),
        ({"policy_revision": None}, "claim policy_revision must be a non-empty string"),
        ({"extra": "x"}, "unexpected claim 'extra'"),
        ({"jti": "j" * 257}, "claim jti must be a non-empty string"),
        ({"sub": "r" * 257}, "claim sub must be a non-empty string"),
    ],
)
def test_engine_signed_but_wrong_claims_are_refused(
    keyring: EngineKeyring, verifier: WarrantVerifier, claims: dict[str, Any], reason: str
) -> None:
    # The whole reason, anchored: a refusal for another reason must not pass.
    with pytest.raises(InvalidWarrant, match=f"^invalid warrant: {reason}$") as exc:
        verifier.verify(_engine_signed(keyring, **claims), action_digest=DIGEST, now=NOW)
    assert exc.value.code == "invalid_warrant"


def test_issuer_refuses_to_mint_what_verifiers_refuse(issuer: WarrantIssuer) -> None:
    common: dict[str, Any] = {"request_id": "r", "action_digest": DIGEST, "policy_revision": REVISION, "now": NOW}
    with pytest.raises(ApprovalError, match="tier 'deny'"):
        issuer.issue(tier="deny", approvals=[], **common)
    with pytest.raises(ApprovalError, match="'alice' is counted twice"):
        issuer.issue(tier="dual_approval", approvals=[APPROVALS[0], APPROVALS[0]], **common)
    with pytest.raises(ApprovalError, match="needs 2 distinct approvals"):
        issuer.issue(tier="dual_approval", approvals=APPROVALS[:1], **common)


def test_auto_allow_warrant_carries_no_approvals(issuer: WarrantIssuer, verifier: WarrantVerifier) -> None:
    token = issuer.issue(
        request_id="r", action_digest=DIGEST, tier="auto_allow", approvals=[], policy_revision=REVISION, now=NOW
    ).token
    claims = verifier.verify(token, action_digest=DIGEST, now=NOW)
    assert claims.tier == "auto_allow" and claims.approvals == () and claims.request_id == "r"
    assert claims.iss == ISSUER and claims.aud == AUDIENCE


def test_verifier_returns_exactly_the_claims_that_were_signed(
    keyring: EngineKeyring, verifier: WarrantVerifier
) -> None:
    # The guard acts on what verify() returns (tier, request, digest, time
    # bounds, policy revision); a field dropped or swapped there would let a
    # warrant be judged on claims nobody signed.
    signed = genuine_claims(nbf=int(NOW.timestamp()) + 1, exp=int(NOW.timestamp()) + 299)
    _, key = keyring.signing_key()
    token = sign_token(key, signed, kid=keyring.current_kid)
    claims = verifier.verify(token, action_digest=DIGEST, now=NOW + timedelta(seconds=1))
    got = {name: getattr(claims, name) for name in signed}
    assert got == {**signed, "approvals": tuple(signed["approvals"])}
    assert claims.kid == keyring.current_kid


@pytest.mark.parametrize("name", ["sub", "jti", "policy_revision"])
def test_id_claim_of_the_largest_length_is_accepted(
    keyring: EngineKeyring, verifier: WarrantVerifier, name: str
) -> None:
    longest = "x" * MAX_ID_LENGTH
    claims = verifier.verify(_engine_signed(keyring, **{name: longest}), action_digest=DIGEST, now=NOW)
    assert getattr(claims, name) == longest

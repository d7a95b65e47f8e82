"""Forged signatures: approvals signed by the wrong key or edited after signing; edited warrants."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.approve.approvals import SignedStatement, sign
from hitlgate.engine.keys.keyring import b64url_decode, b64url_encode
from hitlgate.engine.keys.warrants import IssuedWarrant, WarrantVerifier
from hitlgate.errors import ApprovalError, InvalidWarrant, ValidationError

from .conftest import DIGEST, NOW, b64json, make_statement

ALICE = Ed25519PrivateKey.generate()
MALLORY = Ed25519PrivateKey.generate()


def test_statement_signed_by_another_key_is_refused() -> None:
    # Mallory signs a statement naming Alice; the engine checks it against
    # Alice's registered key.
    forged = sign(make_statement(), MALLORY)
    with pytest.raises(ApprovalError, match="signature of alice's approve does not verify"):
        forged.verify(ALICE.public_key())


@pytest.mark.parametrize(
    "edit",
    [
        {"verdict": "reject"},
        {"action_digest": "sha256:" + "0" * 64},
        {"request_id": "req-0002"},
        {"approver": "bob"},
        {"at": NOW + timedelta(seconds=1)},
    ],
)
def test_statement_edited_after_signing_is_refused(edit: dict[str, object]) -> None:
    genuine = sign(make_statement(), ALICE)
    genuine.verify(ALICE.public_key())
    edited = dataclasses.replace(genuine, statement=dataclasses.replace(genuine.statement, **edit))  # type: ignore[arg-type]
    with pytest.raises(ApprovalError, match="does not verify"):
        edited.verify(ALICE.public_key())


def test_statement_edited_in_its_json_file_is_refused() -> None:
    doc = json.loads(sign(make_statement(verdict="reject"), ALICE).to_json())
    doc["statement"]["verdict"] = "approve"
    with pytest.raises(ApprovalError, match="alice's approve does not verify"):
        SignedStatement.from_dict(doc).verify(ALICE.public_key())


def test_flipped_signature_bits_are_refused() -> None:
    genuine = sign(make_statement(), ALICE)
    raw = bytearray(b64url_decode(genuine.signature))
    raw[10] ^= 0x01
    with pytest.raises(ApprovalError, match="does not verify"):
        SignedStatement(genuine.statement, b64url_encode(bytes(raw))).verify(ALICE.public_key())


@pytest.mark.parametrize("signature", ["", "AAAA", "A" * 85 + "=", "A" * 87, "!" * 86])
def test_malformed_signatures_are_refused_at_parse_time(signature: str) -> None:
    with pytest.raises(ValidationError, match="signature"):
        SignedStatement(make_statement(), signature)


def test_non_ed25519_registered_key_is_refused() -> None:
    with pytest.raises(ApprovalError, match="not Ed25519"):
        sign(make_statement(), ALICE).verify("ed25519:abc")  # type: ignore[arg-type]


def _edit_payload(token: str, **changes: object) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims.update(changes)
    return f"{header}.{b64json(claims)}.{signature}"


@pytest.mark.parametrize(
    "change",
    [
        {"tier": "auto_allow"},
        {"approvals": []},
        {"sub": "req-0002"},
        {"exp": 4102444800},
        {"action_digest": "sha256:" + "1" * 64},
        {"policy_revision": "sha256:" + "d" * 64},
    ],
)
def test_edited_warrant_payload_is_refused(
    verifier: WarrantVerifier, warrant: IssuedWarrant, change: dict[str, object]
) -> None:
    with pytest.raises(InvalidWarrant, match="signature does not verify"):
        verifier.verify(_edit_payload(warrant.token, **change), action_digest=DIGEST, now=NOW)


def test_reencoded_payload_with_same_claims_is_refused(verifier: WarrantVerifier, warrant: IssuedWarrant) -> None:
    # The signature covers the encoded bytes, not the meaning: whitespace
    # added to the same claims is a different message.
    header, payload, signature = warrant.token.split(".")
    spaced = b64url_encode(json.dumps(json.loads(b64url_decode(payload)), indent=1).encode())
    with pytest.raises(InvalidWarrant, match="signature does not verify"):
        verifier.verify(f"{header}.{spaced}.{signature}", action_digest=DIGEST, now=NOW)


def test_signature_swapped_from_another_warrant_is_refused(
    verifier: WarrantVerifier, warrant: IssuedWarrant, issuer: object
) -> None:
    from hitlgate.engine.keys.warrants import WarrantIssuer

    assert isinstance(issuer, WarrantIssuer)
    other = issuer.issue(
        request_id="req-0002", action_digest=DIGEST, tier="auto_allow", approvals=[], policy_revision="r", now=NOW
    )
    header, payload, _ = warrant.token.split(".")
    with pytest.raises(InvalidWarrant, match="signature does not verify"):
        verifier.verify(f"{header}.{payload}.{other.token.split('.')[2]}", action_digest=DIGEST, now=NOW)

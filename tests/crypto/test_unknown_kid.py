"""Unknown keys: a warrant names its key by kid, and only our own key set is consulted."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.keys.keyring import EngineKeyring, b64url_encode, jwk_thumbprint
from hitlgate.engine.keys.warrants import WARRANT_TYP, WarrantIssuer, WarrantVerifier
from hitlgate.errors import ConfigError, InvalidWarrant

from .conftest import AUDIENCE, DIGEST, ISSUER, NOW, REVISION, b64json, genuine_claims, sign_token


def test_kid_of_a_foreign_key_is_refused(verifier: WarrantVerifier) -> None:
    attacker = Ed25519PrivateKey.generate()
    token = sign_token(attacker, genuine_claims(), kid=jwk_thumbprint(attacker.public_key()))
    with pytest.raises(InvalidWarrant, match="unknown kid .*not in the trusted key set"):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


def test_warrant_from_another_engine_is_refused(tmp_path: Path, keyring: EngineKeyring) -> None:
    # A second deployment (say, staging) has its own keyring; its warrants
    # must not open production executors even with the same iss/aud.
    other = EngineKeyring.load_or_create(tmp_path / "other-engine")
    token = (
        WarrantIssuer(other, issuer=ISSUER, audience=AUDIENCE)
        .issue(
            request_id="req-0001",
            action_digest=DIGEST,
            tier="auto_allow",
            approvals=[],
            policy_revision=REVISION,
            now=NOW,
        )
        .token
    )
    kid = other.current_kid
    for trusted in (keyring, EngineKeyring.from_jwks(keyring.jwks(NOW))):
        # The same words and code whether the verifier holds a keyring or a fixed key set (an executor's JWKS).
        with pytest.raises(InvalidWarrant, match=f"^invalid warrant: unknown kid {kid}: not in the trusted key "
                                                 "set$") as exc:
            WarrantVerifier(trusted, issuer=ISSUER, audience=AUDIENCE).verify(token, action_digest=DIGEST, now=NOW)
        assert exc.value.code == "unknown_kid"


def test_empty_key_set_trusts_nothing(keyring: EngineKeyring, issuer: WarrantIssuer) -> None:
    token = issuer.issue(
        request_id="r", action_digest=DIGEST, tier="auto_allow", approvals=[], policy_revision=REVISION, now=NOW
    ).token
    with pytest.raises(InvalidWarrant, match="unknown kid") as exc:
        WarrantVerifier({}, issuer=ISSUER, audience=AUDIENCE).verify(token, action_digest=DIGEST, now=NOW)
    assert exc.value.code == "unknown_kid"


@pytest.mark.parametrize("kid", ["../../etc/passwd", "", "short", 42, None, "A" * 44])
def test_malformed_kid_is_refused(keyring: EngineKeyring, verifier: WarrantVerifier, kid: object) -> None:
    _, key = keyring.signing_key()
    header = {"alg": "EdDSA", "typ": WARRANT_TYP, "kid": kid}
    signing_input = f"{b64json(header)}.{b64json(genuine_claims())}"
    token = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"
    with pytest.raises(InvalidWarrant, match="^invalid warrant: header kid is missing or malformed$"):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


def test_missing_kid_is_refused(keyring: EngineKeyring, verifier: WarrantVerifier) -> None:
    _, key = keyring.signing_key()
    signing_input = f"{b64json({'alg': 'EdDSA', 'typ': WARRANT_TYP})}.{b64json(genuine_claims())}"
    token = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"
    with pytest.raises(InvalidWarrant, match="^invalid warrant: header kid is missing or malformed$"):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


def test_later_changes_to_the_callers_mapping_do_not_add_trust(keyring: EngineKeyring) -> None:
    trusted = EngineKeyring.from_jwks(keyring.jwks(NOW))
    verifier = WarrantVerifier(trusted, issuer=ISSUER, audience=AUDIENCE)
    attacker = Ed25519PrivateKey.generate()
    kid = jwk_thumbprint(attacker.public_key())
    trusted[kid] = attacker.public_key()
    with pytest.raises(InvalidWarrant, match="unknown kid"):
        verifier.verify(sign_token(attacker, genuine_claims(), kid=kid), action_digest=DIGEST, now=NOW)


def test_verifier_refuses_non_ed25519_trusted_keys() -> None:
    with pytest.raises(ConfigError, match="not an Ed25519 public key"):
        WarrantVerifier({"k": "not a key"}, issuer=ISSUER, audience=AUDIENCE)  # type: ignore[dict-item]

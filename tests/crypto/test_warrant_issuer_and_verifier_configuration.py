"""A warrant issuer or verifier configured out of its bounds is refused at construction, by name.

An issuer with an empty audience would sign warrants every executor
accepts; a verifier with an empty issuer or a leeway of minutes would
accept warrants it should not; a trusted "key" that is not an Ed25519
public key would only fail at the first verification. Each is refused
when the object is made, with the whole message checked.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.config import DEFAULT_WARRANT_TTL
from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.engine.keys.warrants import MAX_TTL_SECONDS, MIN_TTL_SECONDS, WarrantIssuer, WarrantVerifier
from hitlgate.errors import ConfigError, InvalidWarrant

from .conftest import AUDIENCE, DIGEST, ISSUER, NOW, genuine_claims, sign_token

K1, K2 = "1" * 43, "2" * 43  # Key ids of the form a warrant's header must have.


def _refused(message: str) -> Any:
    return pytest.raises(ConfigError, match="^" + re.escape(message) + "$")


@pytest.mark.parametrize("ttl", [MIN_TTL_SECONDS - 1, MAX_TTL_SECONDS + 1, True, 300.0, "300"])
def test_an_issuer_ttl_outside_its_bounds_is_named_with_the_bounds(keyring: EngineKeyring, ttl: Any) -> None:
    with _refused(f"warrant ttl_seconds must be an integer from 10 to 3600 (warrants live minutes, not hours), "
                  f"not {ttl!r}"):
        WarrantIssuer(keyring, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=ttl)


@pytest.mark.parametrize("ttl", [MIN_TTL_SECONDS, MAX_TTL_SECONDS])
def test_the_issuer_ttl_bounds_are_inclusive(keyring: EngineKeyring, ttl: int) -> None:
    assert WarrantIssuer(keyring, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=ttl).ttl_seconds == ttl


@pytest.mark.parametrize(("field", "value"), [("issuer", ""), ("audience", ""), ("issuer", None), ("audience", 7)])
def test_an_empty_issuer_or_audience_is_refused(keyring: EngineKeyring, field: str, value: Any) -> None:
    names = {"issuer": ISSUER, "audience": AUDIENCE, field: value}
    with _refused(f"warrant {field} must be a non-empty string"):
        WarrantIssuer(keyring, **names)
    with _refused(f"warrant {field} must be a non-empty string"):
        WarrantVerifier(keyring, **names)


@pytest.mark.parametrize("leeway", [-1, 61, True, 1.5])
def test_a_verifier_leeway_outside_zero_to_sixty_seconds_is_refused(keyring: EngineKeyring, leeway: Any) -> None:
    with _refused("leeway_seconds must be an integer from 0 to 60"):
        WarrantVerifier(keyring, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=leeway)


@pytest.mark.parametrize("leeway", [0, 60])
def test_the_verifier_leeway_bounds_are_inclusive(keyring: EngineKeyring, leeway: int) -> None:
    assert WarrantVerifier(keyring, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=leeway).leeway == leeway


def test_a_trusted_key_that_is_not_an_ed25519_public_key_is_refused(keyring: EngineKeyring) -> None:
    private = Ed25519PrivateKey.generate()
    with _refused("trusted key k1 is not an Ed25519 public key"):
        WarrantVerifier({"k1": private}, issuer=ISSUER, audience=AUDIENCE)  # type: ignore[dict-item]


def test_a_verifier_keeps_its_own_copy_of_the_trusted_keys(keyring: EngineKeyring) -> None:
    # The caller's mapping changing later (a key added by mistake) must not change what is trusted.
    trusted = {K1: Ed25519PrivateKey.generate().public_key()}
    verifier = WarrantVerifier(trusted, issuer=ISSUER, audience=AUDIENCE)
    added = Ed25519PrivateKey.generate()
    trusted[K2] = added.public_key()
    token = sign_token(added, genuine_claims(), kid=K2)
    with pytest.raises(InvalidWarrant, match=f"^invalid warrant: unknown kid {K2}: not in the trusted key set$"):
        verifier.verify(token, action_digest=DIGEST, now=NOW)
    fresh = WarrantVerifier(trusted, issuer=ISSUER, audience=AUDIENCE)
    assert fresh.verify(token, action_digest=DIGEST, now=NOW).jti == "jti-forged-0001"


def test_an_issuer_given_no_ttl_uses_the_configurations_default_of_five_minutes(keyring: EngineKeyring) -> None:
    # A library caller that leaves the lifetime out gets the same one `hitlgate.yaml` defaults to, not another.
    issuer = WarrantIssuer(keyring, issuer=ISSUER, audience=AUDIENCE)
    assert issuer.ttl_seconds == DEFAULT_WARRANT_TTL == 300
    token = issuer.issue(request_id="req-1", action_digest=DIGEST, tier="single_approval",
                         approvals=[{"approver": "alice"}], policy_revision="sha256:" + "ab" * 32, now=NOW).token
    claims = WarrantVerifier(keyring, issuer=ISSUER, audience=AUDIENCE).verify(token, action_digest=DIGEST, now=NOW)
    assert claims.exp - claims.iat == 300

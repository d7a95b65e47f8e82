"""Time bounds, against an injectable clock: warrants live minutes and only inside [nbf, exp)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.engine.keys.warrants import IssuedWarrant, WarrantIssuer, WarrantVerifier
from hitlgate.errors import ConfigError, InputError, InvalidWarrant

from .conftest import AUDIENCE, DIGEST, ISSUER, NOW, genuine_claims, sign_token

T0 = int(NOW.timestamp())


def test_valid_until_the_last_second(verifier: WarrantVerifier, warrant: IssuedWarrant) -> None:
    assert warrant.expires_at == NOW + timedelta(seconds=300)
    claims = verifier.verify(warrant.token, action_digest=DIGEST, now=NOW + timedelta(seconds=299))
    assert claims.expires_at == warrant.expires_at and claims.exp - claims.iat == 300


def test_expired_warrant_is_refused(verifier: WarrantVerifier, warrant: IssuedWarrant) -> None:
    for later in (300, 301, 3600, 86400 * 365):
        with pytest.raises(InvalidWarrant, match=rf"^invalid warrant: warrant expired at {T0 + 300} "
                                                 rf"\(now {T0 + later}\)$") as exc:
            verifier.verify(warrant.token, action_digest=DIGEST, now=NOW + timedelta(seconds=later))
        assert exc.value.code == "expired"


def test_not_yet_valid_warrant_is_refused(verifier: WarrantVerifier, warrant: IssuedWarrant) -> None:
    with pytest.raises(InvalidWarrant, match=rf"^invalid warrant: warrant is not yet valid \(nbf {T0}, "
                                             rf"now {T0 - 1}\)$") as exc:
        verifier.verify(warrant.token, action_digest=DIGEST, now=NOW - timedelta(seconds=1))
    assert exc.value.code == "not_yet_valid"


def test_leeway_widens_both_bounds_by_exactly_its_size(keyring: EngineKeyring, warrant: IssuedWarrant) -> None:
    lenient = WarrantVerifier(keyring, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=5)
    lenient.verify(warrant.token, action_digest=DIGEST, now=NOW + timedelta(seconds=304))
    lenient.verify(warrant.token, action_digest=DIGEST, now=NOW - timedelta(seconds=5))
    with pytest.raises(InvalidWarrant, match=rf"^invalid warrant: warrant expired at {T0 + 300} \(now {T0 + 305}\)$"):
        lenient.verify(warrant.token, action_digest=DIGEST, now=NOW + timedelta(seconds=305))
    with pytest.raises(InvalidWarrant, match=rf"^invalid warrant: warrant is not yet valid \(nbf {T0}, "
                                             rf"now {T0 - 6}\)$"):
        lenient.verify(warrant.token, action_digest=DIGEST, now=NOW - timedelta(seconds=6))


def test_issued_in_the_future_is_refused(keyring: EngineKeyring, verifier: WarrantVerifier) -> None:
    # Signed by the real engine key: models an engine with a clock far ahead.
    _, key = keyring.signing_key()
    token = sign_token(key, genuine_claims(iat=T0 + 60, nbf=T0, exp=T0 + 300), kid=keyring.current_kid)
    with pytest.raises(InvalidWarrant, match=r"^invalid warrant: time claims are inconsistent or the lifetime exceeds "
                                             r"3600 s$"):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


def test_lifetime_over_an_hour_is_refused_even_when_signed(keyring: EngineKeyring, verifier: WarrantVerifier) -> None:
    _, key = keyring.signing_key()
    token = sign_token(key, genuine_claims(exp=T0 + 3601), kid=keyring.current_kid)
    with pytest.raises(InvalidWarrant, match=r"^invalid warrant: time claims are inconsistent or the lifetime exceeds "
                                             r"3600 s$"):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


def test_zero_lifetime_warrant_is_refused_as_inconsistent(keyring: EngineKeyring) -> None:
    # nbf == exp: an empty validity window. With leeway it would open for a
    # few seconds, so it is refused for what it is, not as "expired".
    lenient = WarrantVerifier(keyring, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=5)
    _, key = keyring.signing_key()
    token = sign_token(key, genuine_claims(nbf=T0, exp=T0), kid=keyring.current_kid)
    with pytest.raises(InvalidWarrant, match=r"^invalid warrant: time claims are inconsistent or the lifetime exceeds "
                                             r"3600 s$"):
        lenient.verify(token, action_digest=DIGEST, now=NOW)


def test_lifetime_of_exactly_an_hour_is_the_limit_not_over_it(
    keyring: EngineKeyring, verifier: WarrantVerifier
) -> None:
    _, key = keyring.signing_key()
    token = sign_token(key, genuine_claims(exp=T0 + 3600), kid=keyring.current_kid)
    assert verifier.verify(token, action_digest=DIGEST, now=NOW).exp == T0 + 3600


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [True, "1738324800", 1738324800.5, None])
def test_time_claims_must_be_integers(
    keyring: EngineKeyring, verifier: WarrantVerifier, claim: str, value: object
) -> None:
    _, key = keyring.signing_key()
    token = sign_token(key, genuine_claims(**{claim: value}), kid=keyring.current_kid)
    with pytest.raises(InvalidWarrant, match=f"^invalid warrant: claim {claim} must be an integer$"):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat", "jti", "sub", "aud", "iss", "ver", "approvals"])
def test_missing_required_claims_are_refused(keyring: EngineKeyring, verifier: WarrantVerifier, claim: str) -> None:
    _, key = keyring.signing_key()
    claims = genuine_claims()
    del claims[claim]
    with pytest.raises(InvalidWarrant, match=f"^invalid warrant: missing claim '{claim}'$"):
        verifier.verify(sign_token(key, claims, kid=keyring.current_kid), action_digest=DIGEST, now=NOW)


@pytest.mark.parametrize("ttl", [0, 9, 3601, 86400, True, 300.0])
def test_ttl_outside_minutes_is_a_config_error(keyring: EngineKeyring, ttl: object) -> None:
    with pytest.raises(ConfigError, match="minutes, not hours"):
        WarrantIssuer(keyring, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=ttl)  # type: ignore[arg-type]


def test_naive_clock_is_refused(verifier: WarrantVerifier, warrant: IssuedWarrant) -> None:
    with pytest.raises(InputError, match="timezone-aware UTC"):
        verifier.verify(warrant.token, action_digest=DIGEST, now=datetime(2025, 1, 31, 12, 0, 0))  # noqa: DTZ001

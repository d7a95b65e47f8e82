"""Threat: a token the engine's key signed, but not as a checkpoint of this format, passed off as one.

A checkpoint's signature covers exactly ``{ver, seq, hash, at}`` at version
1. A token carrying those claims plus others (another token type the same
key might one day sign, or a future format an old verifier would misread),
or the right claims at another version, must be refused as malformed
rather than accepted because the four fields it checks happen to match.
The verifier is also held to the keys it is given: an auditor's key set
that lacks the engine's key refuses the engine's checkpoints.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine._time import format_time
from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.engine.ledger.audit import (
    CHECKPOINT_TYP,
    CHECKPOINT_VERSION,
    AuditEvent,
    Checkpoint,
    sign_checkpoint,
    verify_chain,
)
from hitlgate.errors import AuditChainError, InputError

from .conftest import NOW, proposed_chain


def _chain(n: int = 4) -> list[AuditEvent]:
    return proposed_chain(n)


def _signed_as_checkpoint(keyring: EngineKeyring, head: AuditEvent, claims: dict[str, object]) -> Checkpoint:
    kid, key = keyring.signing_key()
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": CHECKPOINT_TYP})
    return Checkpoint(seq=head.seq, head_hash=head.hash, at=NOW, token=token, kid=kid)


@pytest.mark.parametrize("extra", [{"sub": "warrant"}, {"jti": "w-1"}, {"request_id": "req-0"}])
def test_checkpoint_with_claims_beyond_its_format_is_refused(keyring: EngineKeyring, extra: dict[str, str]) -> None:
    events = _chain()
    head = events[-1]
    claims = {"ver": CHECKPOINT_VERSION, "seq": head.seq, "hash": head.hash, "at": format_time(NOW), **extra}
    keys = EngineKeyring.from_jwks(keyring.jwks(NOW))
    with pytest.raises(AuditChainError, match=f"^checkpoint at seq {head.seq}: signed claims are malformed$"):
        verify_chain(events, [_signed_as_checkpoint(keyring, head, claims)], keys)


def test_checkpoint_of_another_version_is_refused(keyring: EngineKeyring) -> None:
    events = _chain()
    head = events[-1]
    claims = {"ver": CHECKPOINT_VERSION + 1, "seq": head.seq, "hash": head.hash, "at": format_time(NOW)}
    keys = EngineKeyring.from_jwks(keyring.jwks(NOW))
    with pytest.raises(AuditChainError, match=f"^checkpoint at seq {head.seq}: signed claims are malformed$"):
        verify_chain(events, [_signed_as_checkpoint(keyring, head, claims)], keys)


def test_checkpoint_is_checked_against_the_keys_given_not_the_engines(keyring: EngineKeyring) -> None:
    events = _chain()
    genuine = sign_checkpoint(keyring, events[-1], NOW)
    assert verify_chain(events, [genuine], EngineKeyring.from_jwks(keyring.jwks(NOW))).events_checked == 4
    stranger = {genuine.kid: Ed25519PrivateKey.generate().public_key()}
    with pytest.raises(AuditChainError, match=f"^checkpoint at seq {genuine.seq} is forged or corrupt"):
        verify_chain(events, [genuine], stranger)


@pytest.mark.parametrize("at", [NOW.replace(tzinfo=None), NOW.astimezone(timezone(timedelta(hours=2)))],
                         ids=["naive", "another-offset"])
def test_a_checkpoint_is_signed_only_at_a_utc_time(keyring: EngineKeyring, at: datetime) -> None:
    with pytest.raises(InputError, match="^checkpoint time must be a timezone-aware UTC datetime$"):
        sign_checkpoint(keyring, _chain()[-1], at)

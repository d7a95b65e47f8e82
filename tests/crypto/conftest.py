"""Shared fixtures for the crypto tests: real keys, real files, a fixed clock."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.approve.approvals import Statement
from hitlgate.engine.decide.proposal import action_digest
from hitlgate.engine.keys.keyring import EngineKeyring, b64url_encode
from hitlgate.engine.keys.warrants import WARRANT_TYP, IssuedWarrant, WarrantIssuer, WarrantVerifier
from hitlgate.engine.ledger.audit import AuditEvent, next_event

NOW = datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)
ISSUER = "hitlgate"
AUDIENCE = "hitlgate-executor"
REVISION = "sha256:" + "c" * 64

ACTION: dict[str, Any] = {
    "type": "rotate_api_key",
    "target": "svc-payments-api-key",
    "parameters": {"reason": "key seen in a public paste", "grace_minutes": 5},
}
DIGEST = action_digest(ACTION)

APPROVALS = [
    {"approver": "alice", "slot": {"roles": ["secops-lead"]}, "at": "2025-01-31T11:58:00Z", "signature": "A" * 86},
    {"approver": "bob", "slot": {"teams": ["team-payments"]}, "at": "2025-01-31T11:59:00Z", "signature": "B" * 86},
]


@pytest.fixture
def keyring(tmp_path: Path) -> EngineKeyring:
    """A fresh engine keyring in its own directory."""
    return EngineKeyring.load_or_create(tmp_path / "engine-keys")


@pytest.fixture
def issuer(keyring: EngineKeyring) -> WarrantIssuer:
    """An issuer with the default five-minute lifetime."""
    return WarrantIssuer(keyring, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=300)


@pytest.fixture
def verifier(keyring: EngineKeyring) -> WarrantVerifier:
    """A verifier that trusts only the keyring's JWKS (what an executor holds)."""
    return WarrantVerifier(EngineKeyring.from_jwks(keyring.jwks(NOW)), issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def warrant(issuer: WarrantIssuer) -> IssuedWarrant:
    """A genuine dual-approval warrant for :data:`ACTION`, issued at :data:`NOW`."""
    return issuer.issue(
        request_id="req-0001",
        action_digest=DIGEST,
        tier="dual_approval",
        approvals=APPROVALS,
        policy_revision=REVISION,
        now=NOW,
    )


def b64json(obj: Any) -> str:
    """base64url of compact JSON, as a token segment."""
    return b64url_encode(json.dumps(obj, separators=(",", ":")).encode())


def genuine_claims(**overrides: Any) -> dict[str, Any]:
    """Claims exactly as the issuer would write them, with overrides."""
    iat = int(NOW.timestamp())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "req-0001",
        "jti": "jti-forged-0001",
        "iat": iat,
        "nbf": iat,
        "exp": iat + 300,
        "ver": 1,
        "action_digest": DIGEST,
        "tier": "dual_approval",
        "approvals": APPROVALS,
        "policy_revision": REVISION,
    }
    claims.update(overrides)
    return claims


def sign_token(
    key: Ed25519PrivateKey,
    claims: Mapping[str, Any],
    *,
    kid: str,
    typ: str = WARRANT_TYP,
    extra_header: Mapping[str, Any] | None = None,
) -> str:
    """Hand-build an EdDSA compact JWS with any header and claims.

    Signing with the real engine key models an issuer bug (the claim checks
    must still hold); signing with another key models a forger.
    """
    header = {"alg": "EdDSA", "typ": typ, "kid": kid, **(extra_header or {})}
    signing_input = f"{b64json(header)}.{b64json(dict(claims))}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"


def make_statement(**overrides: object) -> Statement:
    """A valid approval statement for request req-0001 on DIGEST, with overridable fields."""
    fields: dict[str, object] = {
        "request_id": "req-0001",
        "action_digest": DIGEST,
        "verdict": "approve",
        "approver": "alice",
        "at": NOW,
    }
    fields.update(overrides)
    return Statement(**fields)  # type: ignore[arg-type]


def in_local_zone(monkeypatch: pytest.MonkeyPatch, zone: str) -> Iterator[None]:
    """For a fixture: the process's local time zone set to ``zone`` (``TZ``), restored afterwards."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


def proposed_chain(n: int) -> list[AuditEvent]:
    """``n`` chained ``proposed`` events, one a second from NOW (payload ``{"i": i}``)."""
    events: list[AuditEvent] = []
    prev = None
    for i in range(n):
        prev = next_event(prev, kind="proposed", request_id=f"req-{i}", payload={"i": i},
                          at=NOW + timedelta(seconds=i))
        events.append(prev)
    return events

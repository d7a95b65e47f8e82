"""Threat: ``audit verify`` given an auditor's public keys checks the checkpoints with the engine's own keys instead.

An auditor verifies with the keys they hold (a JWKS fetched earlier, not
the engine's key directory, which whoever controls the engine can replace).
If the keys passed in were ignored, a replaced engine key would vouch for
checkpoints the auditor's keys never signed. With keys that lack the
engine's, verification must fail; with the right ones it passes.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.errors import AuditChainError
from tests.workflow._helpers import proposal


def test_verify_uses_the_keys_it_is_given(engine: Engine) -> None:
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.checkpoint()
    held = EngineKeyring.from_jwks(engine.keyring.jwks(engine.now()))
    report = engine.verify_audit(held)
    assert report.events > 0 and report.checkpoints >= 1
    strangers = {kid: Ed25519PrivateKey.generate().public_key() for kid in held}
    with pytest.raises(AuditChainError, match=r"checkpoint at seq \d+ is forged or corrupt"):
        engine.verify_audit(strangers)


def test_checkpoints_of_a_key_retired_long_ago_still_verify(engine: Engine) -> None:
    # Retired keys leave the JWKS after their grace window, but the checkpoints they signed stay in
    # the chain: the engine's own verify holds them against its whole key history, or every rotation
    # would, a day later, make its own audit chain fail to verify.
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    old = engine.checkpoint()
    engine.keyring.rotate(engine.now())  # The test clock's time: long before today.
    assert old.kid not in engine.keyring.public_keys()
    engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    engine.checkpoint()
    report = engine.verify_audit()
    assert report.checkpoints >= 2

"""Action tampering: a warrant opens exactly the action it was issued for."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hitlgate.engine.decide.proposal import action_digest
from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.engine.keys.warrants import IssuedWarrant, WarrantVerifier
from hitlgate.errors import InvalidWarrant

from .conftest import ACTION, DIGEST, NOW, genuine_claims, sign_token


def _changed(**changes: Any) -> dict[str, Any]:
    action = copy.deepcopy(ACTION)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = action
        for p in parents:
            node = node[p]
        node[leaf] = value
    return action


def test_the_exact_action_verifies_whatever_its_key_order(verifier: WarrantVerifier, warrant: IssuedWarrant) -> None:
    reordered = {"parameters": dict(reversed(list(ACTION["parameters"].items()))), "target": ACTION["target"]}
    reordered["type"] = ACTION["type"]
    claims = verifier.verify(warrant.token, action_digest=action_digest(reordered), now=NOW)
    assert claims.action_digest == DIGEST


@pytest.mark.parametrize(
    "tampered",
    [
        _changed(type="suspend_service_account"),
        _changed(target="svc-billing-api-key"),
        _changed(parameters__reason="routine"),
        _changed(parameters__grace_minutes=500),
        _changed(parameters__grace_minutes="5"),
        _changed(parameters__extra=True),
        _changed(parameters={}),
        {"type": ACTION["type"], "target": ACTION["target"]},
    ],
    ids=["type", "target", "param-value", "param-number", "param-type", "param-added", "params-dropped", "no-params"],
)
def test_warrant_for_a_changed_action_is_refused(
    verifier: WarrantVerifier, warrant: IssuedWarrant, tampered: dict[str, Any]
) -> None:
    assert action_digest(tampered) != DIGEST
    with pytest.raises(InvalidWarrant, match=r"^invalid warrant: warrant is bound to a different action "
                                             r"\(action digest mismatch\)$") as exc:
        verifier.verify(warrant.token, action_digest=action_digest(tampered), now=NOW)
    assert exc.value.code == "digest_mismatch"


@pytest.mark.parametrize("presented", ["", DIGEST.upper(), DIGEST + " ", DIGEST[7:], "sha256:*"])
def test_digest_lookalikes_are_refused(verifier: WarrantVerifier, warrant: IssuedWarrant, presented: str) -> None:
    with pytest.raises(InvalidWarrant, match="bound to a different action"):
        verifier.verify(warrant.token, action_digest=presented, now=NOW)


@pytest.mark.parametrize("bound", ["sha256:*", "", None, DIGEST.upper(), ["sha256:" + "0" * 64]])
def test_malformed_digest_claim_is_refused(keyring: EngineKeyring, verifier: WarrantVerifier, bound: object) -> None:
    # Even an engine-signed warrant with a wildcard-looking digest opens nothing.
    _, key = keyring.signing_key()
    token = sign_token(key, genuine_claims(action_digest=bound), kid=keyring.current_kid)
    with pytest.raises(InvalidWarrant, match=r"^invalid warrant: claim action_digest is malformed$"):
        verifier.verify(token, action_digest=DIGEST, now=NOW)

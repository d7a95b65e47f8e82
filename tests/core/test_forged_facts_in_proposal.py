"""Forged facts: an agent that sends its own ``inventory`` is refused, and could not win anyway.

The policy reads the target's facts from ``input.inventory``, which the
engine adds after validating the proposal. An agent that puts an
``inventory`` of its own at the top of the proposal (claiming its target is
a harmless development key, or that nothing is protected) must get a
ValidationError naming the field; and a backend called without validation
still replaces whatever ``inventory`` the document carried with the facts
from the real inventory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine import Decider
from hitlgate.engine._resources import bundled_data_dir, bundled_policy_dir
from hitlgate.engine.decide._regopy import RegopyBackend
from hitlgate.errors import ValidationError
from tests.conftest import make_proposal

#: What a forging agent would like the policy to believe about the protected break-glass account.
FORGED: dict[str, Any] = {
    "teams": {"team-x": {}},
    "workloads": {},
    "partners": {},
    "identities": {
        "break-glass-admin": {
            "kind": "service_account", "environment": "development", "owner": "team-x",
            "privilege": "low", "used_by": [],
        }
    },
    "approvers": {},
    "protected": [],
}


def _forged() -> dict[str, Any]:
    doc = make_proposal("suspend_service_account", "break-glass-admin")
    doc["inventory"] = FORGED
    return doc


def test_proposal_with_its_own_inventory_is_refused_naming_the_field() -> None:
    decider = Decider(RegopyBackend(bundled_policy_dir(), [bundled_data_dir()]))
    with pytest.raises(ValidationError, match=r"'inventory' was unexpected"):
        decider.decide(_forged())


def test_cli_refuses_forged_facts_as_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(_forged()), encoding="utf-8")
    result = CliRunner().invoke(cli, ["decide", "--json", str(path)], env={"HITLGATE_CONFIG": ""})
    assert result.exit_code == 2, result.output
    assert "'inventory' was unexpected" in result.output


def test_backend_replaces_a_forged_inventory_with_the_real_facts() -> None:
    # Below validation (a caller of the backend itself): the real facts still win.
    backend = RegopyBackend(bundled_policy_dir(), [bundled_data_dir()])
    try:
        honest, _ = backend.evaluate(make_proposal("suspend_service_account", "break-glass-admin"))
        forged, _ = backend.evaluate(_forged())
    finally:
        backend.close()
    assert honest["tier"] == "deny" and "protected_target" in honest["risk_factors"]
    assert forged == honest

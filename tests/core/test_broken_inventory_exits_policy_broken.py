"""A broken inventory is a broken pack: ``decide`` fails closed as ``policy_broken`` and exits 5.

Before, a duplicate YAML key, a YAML alias or two approvers sharing one
public key in the inventory surfaced as a ValidationError inside the
backend, which the decider reported as ``backend_unavailable`` with exit 1:
a CI job could not tell "the inventory is broken" from "the backend is down".
Both backends are checked; the OPA one points at a port nobody listens on,
because the local pack is loaded (and found broken) before OPA is asked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from tests.opa.conftest import free_port

ALICE_KEY = "ed25519:c1bpoYKeFU0Tt4ZOh16T2S5gTr_zwlnqpCqx7mhizMM"


def _duplicate_key(text: str) -> str:
    return text + "\nteams:\n  team-extra: {name: Extra}\n"


def _yaml_alias(text: str) -> str:
    return text.replace("team-payments: {name: Payments}", "team-payments: &pay {name: Payments}", 1) + (
        "\nextra_alias: *pay\n"
    )


def _shared_public_key(text: str) -> str:
    bob = re.search(r'(  bob:\n(?:    .*\n)*?    public_key: )"[^"]+"', text)
    assert bob is not None
    return text[: bob.start()] + bob.group(1) + f'"{ALICE_KEY}"' + text[bob.end() :]


FAULTS = {
    "duplicate_yaml_key": (_duplicate_key, "duplicate key 'teams'"),
    "yaml_alias": (_yaml_alias, "YAML anchors"),
    "two_approvers_one_key": (_shared_public_key, "the same key is already registered"),
}


@pytest.mark.parametrize("backend", ["embedded", "opa"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_broken_inventory_fails_closed_as_policy_broken_exit_5(tmp_path: Path, fault: str, backend: str) -> None:
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    inventory = proj / "policies" / "data" / "inventory.yaml"
    assert ALICE_KEY in inventory.read_text()
    breaker, says = FAULTS[fault]
    inventory.write_text(breaker(inventory.read_text()))
    if backend == "opa":
        config = proj / "hitlgate.yaml"
        url = f"http://127.0.0.1:{free_port()}"
        config.write_text(
            config.read_text().replace("kind: embedded", f'{{kind: opa, url: "{url}", timeout_ms: 500}}', 1)
            .replace("backend:\n  {kind", "backend: {kind", 1)
        )
    result = CliRunner().invoke(cli, ["--config", str(proj / "hitlgate.yaml"), "--json", "decide",
                                      str(proj / "proposal.json")])
    decision = json.loads(result.stdout)
    assert (result.exit_code, decision["tier"], decision["fail_closed"]["code"]) == (5, "deny", "policy_broken"), (
        result.output
    )
    assert says in decision["fail_closed"]["reason"]

"""Labels: an architect's own facts about inventory records, readable by the policy, never claimable by an agent.

Identities, workloads and partners carry an open ``labels`` map (string to
string, bounded); every other unknown field of a record is still refused,
and a proposal cannot add or change a label.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from hitlgate.engine import Config, Decider
from hitlgate.engine.decide.inventory import load_inventory
from hitlgate.engine.decide.schemas import validate
from hitlgate.errors import ValidationError
from tests.conftest import make_proposal

BASE: dict[str, Any] = {
    "teams": {"t": {}},
    "workloads": {"w": {"environment": "production", "owner": "t", "customer_facing": False}},
    "partners": {"p": {"owner": "t", "safe_fallback": True}},
    "identities": {
        "k": {"kind": "api_key", "environment": "production", "owner": "t", "privilege": "low", "used_by": []}
    },
}

RECORDS = [("identities", "k"), ("workloads", "w"), ("partners", "p")]


def _with_labels(section: str, key: str, labels: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc[section][key]["labels"] = labels
    return doc


@pytest.mark.parametrize(("section", "key"), RECORDS)
def test_labels_are_accepted_on_identities_workloads_and_partners(section: str, key: str) -> None:
    validate("inventory", _with_labels(section, key, {"criticality": "crown-jewel", "hitlgate.dev/owner-oncall": ""}))


@pytest.mark.parametrize(("section", "key"), RECORDS)
def test_unknown_record_fields_are_still_refused(section: str, key: str) -> None:
    doc = copy.deepcopy(BASE)
    doc[section][key]["tags"] = ["crown_jewel"]
    with pytest.raises(ValidationError, match=rf"{section}\.{key}: Additional properties .*'tags' was unexpected"):
        validate("inventory", doc)


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ({"crown_jewel": True},
         r"identities\.k\.labels\.crown_jewel: true is not of type 'string' \(quote it to make it text: \"true\"\)"),
        ({"-leading-dash": "x"}, r"identities\.k\.labels: '-leading-dash' does not match"),
        ({"k" * 64: "x"}, r"identities\.k\.labels: 'k{64}' does not match"),
        ({"note": "v" * 254}, r"identities\.k\.labels\.note: 'v+\.\.\.v+' \(254 characters\) is too long"),
        ({"note": "line\nbreak"}, r"identities\.k\.labels\.note: 'line\\nbreak' does not match"),
        ({f"l{i}": "x" for i in range(65)}, r"identities\.k\.labels: has 65 properties, more than allowed"),
        (["crown_jewel"], r"identities\.k\.labels: \['crown_jewel'\] is not of type 'object'"),
    ],
    ids=["boolean-value", "bad-key", "long-key", "long-value", "control-char", "too-many", "list"],
)
def test_labels_are_bounded(labels: Any, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        validate("inventory", _with_labels("identities", "k", labels))


def test_labels_reach_the_policy_as_inventory_data(pack_config: Config) -> None:
    (pack_config.policy_dir / "data" / "labelled.yaml").write_text(
        "identities:\n  vault-key:\n    kind: secret\n    environment: development\n    owner: team-data\n"
        "    privilege: low\n    used_by: []\n    labels: {criticality: crown-jewel}\n",
        encoding="utf-8",
    )
    inventory = load_inventory(pack_config.data_paths)
    assert inventory.document["identities"]["vault-key"]["labels"] == {"criticality": "crown-jewel"}


LABEL_RULE = """package hitlgate

labelled if identity.labels.criticality == "crown-jewel"

factor_present contains "crown_jewel" if labelled

dual_conditions contains "crown_jewel" if {
\tmutating
\tlabelled
}
"""


def test_a_label_claimed_in_the_proposal_does_not_count(pack_config: Config) -> None:
    # The agent says the target is a crown jewel; the inventory says nothing.
    (pack_config.policy_dir / "labels.rego").write_text(LABEL_RULE, encoding="utf-8")
    decider = Decider.from_config(dataclasses.replace(pack_config, risk_factors=("crown_jewel",)))
    claimed = make_proposal("invalidate_tokens", "staging-deploy-token")
    claimed["action"]["parameters"] = {"labels": {"criticality": "crown-jewel"}}
    decision = decider.decide(claimed)
    assert decision.tier == "auto_allow"
    assert "crown_jewel" not in decision.risk_factors

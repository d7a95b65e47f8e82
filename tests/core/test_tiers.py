"""Every row of the tier table, via the scenario corpus, on the embedded engine."""

from __future__ import annotations

from collections import Counter

import pytest

from hitlgate.engine import Decider
from hitlgate.engine.decide.scenarios import Scenario, check
from tests.conftest import make_proposal
from tests.scenario_cases import all_scenarios, scenario_params


@pytest.mark.parametrize("scenario", scenario_params())
def test_scenario(example_decider: Decider, scenario: Scenario) -> None:
    decision = example_decider.decide_validated(scenario.proposal)
    assert check(scenario, decision) == (), decision.reasons


def test_corpus_covers_every_tier_and_the_seed() -> None:
    cases = all_scenarios()
    assert len(cases) >= 40
    tiers = Counter(c.want_tier for c in cases)
    assert set(tiers) == {"auto_allow", "single_approval", "dual_approval", "deny"}
    seeds = {c.note.split(":")[0] for c in cases if c.note.startswith("Seed")}
    assert {"Seed 1", "Seed 2", "Seed 3a", "Seed 3b", "Seed 4a", "Seed 4b", "Seed 5"} <= seeds


def test_dual_quorum_for_owner_team(example_decider: Decider) -> None:
    d = example_decider.decide(make_proposal("rotate_api_key", "svc-payments-key"))
    assert d.quorum.to_dict() == {
        "required": 2,
        "slots": [{"roles": ["security"], "teams": []}, {"roles": [], "teams": ["team-payments"]}],
    }
    assert "svc-payments-key is a production credential used by a customer-facing workload" in " ".join(d.reasons)
    assert d.blast_radius == {"workloads": ("ledger-sync", "payments-api"), "partners": ()}


def test_dual_quorum_for_partner_credential(example_decider: Decider) -> None:
    d = example_decider.decide(make_proposal("disable_federated_credential", "fed-globex-settlement"))
    assert [s.roles for s in d.quorum.slots] == [("security",), ("partner_management",)]
    assert d.blast_radius["partners"] == ("globex-bank",)


def test_single_quorum_is_security_or_owner(example_decider: Decider) -> None:
    d = example_decider.decide(make_proposal("suspend_service_account", "svc-ci-runner"))
    assert d.quorum.to_dict() == {"required": 1, "slots": [{"roles": ["security"], "teams": ["team-platform"]}]}


def test_controls_follow_requester_and_target(example_decider: Decider) -> None:
    agent = example_decider.decide(make_proposal("rotate_api_key", "svc-payments-key"))
    assert [c["id"] for c in agent.controls] == ["NHI-07", "A-03", "RS.MA"]
    human = make_proposal("isolate_workload", "checkout-web")
    human["requester"] = {"id": "analyst-jo", "kind": "human"}
    # A workload is not an NHI and a human is not an agent: only RS.MA applies.
    assert [c["id"] for c in example_decider.decide(human).controls] == ["RS.MA"]


def test_ttl_grows_with_tier(example_decider: Decider) -> None:
    auto = example_decider.decide(make_proposal("invalidate_tokens", "staging-deploy-token"))
    single = example_decider.decide(make_proposal("suspend_service_account", "svc-ci-runner"))
    dual = example_decider.decide(make_proposal("rotate_api_key", "svc-payments-key"))
    deny = example_decider.decide(make_proposal("revoke_secret", "root-ca-key"))
    assert 0 == deny.ttl_seconds < auto.ttl_seconds < single.ttl_seconds < dual.ttl_seconds


def test_revision_names_the_pack(example_decider: Decider) -> None:
    d = example_decider.decide(make_proposal())
    assert d.policy_revision == example_decider.backend.expected_revision
    assert d.policy_revision.startswith("sha256:") and len(d.policy_revision) == 71


def test_every_catalogue_action_is_known_to_the_policy(example_decider: Decider) -> None:
    # The schema's enum is the action catalogue; the pack must have an
    # applicability rule for each, or that action would be denied by accident.
    from hitlgate.engine.decide.schemas import action_types

    for action in action_types():
        d = example_decider.decide(make_proposal(action, "staging-admin-sa"))
        assert "evaluation_error" not in d.risk_factors, (action, d.reasons)
        workload = example_decider.decide(make_proposal(action, "staging-checkout"))
        assert "evaluation_error" not in workload.risk_factors, (action, workload.reasons)

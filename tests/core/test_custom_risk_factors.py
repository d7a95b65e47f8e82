"""A project declares its own risk factors; a factor nobody declared (a typo) still fails closed.

The decision schema ships inside the package, so its list of factors cannot
be edited by a project. It lists the built-in factors; ``risk_factors`` in
``hitlgate.yaml`` adds the project's own, and the engine checks each
decision against both at run time.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from hitlgate.engine import Config, Decider, Decision
from hitlgate.engine._resources import bundled_policy_dir
from hitlgate.engine.decide.decision import check_risk_factors
from hitlgate.engine.decide.schemas import builtin_risk_factors
from hitlgate.errors import ConfigError, PolicyError
from tests.conftest import make_proposal

# An extension module in the pack's own package: the factor `crown_jewel`
# for a target labelled criticality: crown-jewel, which needs dual approval.
CROWN_JEWEL = """package hitlgate

crown_jewel if identity.labels.criticality == "crown-jewel"

factor_present contains "%(factor)s" if crown_jewel

factor_reason["%(factor)s"] := concat("", [target_id, " is a crown jewel"])

dual_conditions contains "crown_jewel" if {
\tmutating
\tcrown_jewel
}

dual_reason["crown_jewel"] := concat("", [target_id, " is a crown jewel"])
"""

LABELLED = """identities:
  vault-key:
    kind: secret
    environment: development
    owner: team-data
    privilege: low
    used_by: []
    labels: {criticality: crown-jewel}
"""


def _with_factor(pack_config: Config, *, rule_names: str, declared: tuple[str, ...]) -> Decider:
    policy_dir = pack_config.policy_dir
    (policy_dir / "crown_jewel.rego").write_text(CROWN_JEWEL % {"factor": rule_names}, encoding="utf-8")
    (policy_dir / "data" / "labelled.yaml").write_text(LABELLED, encoding="utf-8")
    return Decider.from_config(dataclasses.replace(pack_config, risk_factors=declared))


def test_declared_factor_raises_the_tier(pack_config: Config) -> None:
    decider = _with_factor(pack_config, rule_names="crown_jewel", declared=("crown_jewel",))
    decision = decider.decide(make_proposal("rotate_api_key", "vault-key"))
    assert decision.tier == "dual_approval"
    assert decision.risk_factors == ("crown_jewel",)
    assert "dual approval: vault-key is a crown jewel" in decision.reasons


def test_undeclared_factor_fails_closed_naming_it(pack_config: Config) -> None:
    decider = _with_factor(pack_config, rule_names="crown_jewel", declared=())
    decision = decider.decide(make_proposal("rotate_api_key", "vault-key"))
    assert decision.tier == "deny"
    assert decision.risk_factors == ("evaluation_error",)
    assert "risk_factors[0]: 'crown_jewel' is neither a built-in risk factor nor declared" in decision.reasons[0]


def test_typo_in_the_rule_fails_closed_although_the_factor_is_declared(pack_config: Config) -> None:
    decider = _with_factor(pack_config, rule_names="crwn_jewel", declared=("crown_jewel",))
    decision = decider.decide(make_proposal("rotate_api_key", "vault-key"))
    assert decision.tier == "deny"
    assert "'crwn_jewel' is neither a built-in risk factor nor declared" in decision.reasons[0]
    assert "did you mean 'crown_jewel'?" in decision.reasons[0]


def test_other_targets_are_unaffected_by_an_undeclared_factor(pack_config: Config) -> None:
    # The contract is checked per decision: only decisions naming the factor fail.
    decider = _with_factor(pack_config, rule_names="crown_jewel", declared=())
    assert decider.decide(make_proposal("invalidate_tokens", "staging-deploy-token")).tier == "auto_allow"


def test_factors_added_by_modules_follow_the_builtin_ones_sorted(pack_config: Config) -> None:
    (pack_config.policy_dir / "extra.rego").write_text(
        'package hitlgate\n\nfactor_present contains "zeta_risk" if identity\n\n'
        'factor_present contains "alpha_risk" if identity\n',
        encoding="utf-8",
    )
    decider = Decider.from_config(dataclasses.replace(pack_config, risk_factors=("zeta_risk", "alpha_risk")))
    decision = decider.decide(make_proposal("rotate_api_key", "svc-payments-key"))
    assert decision.risk_factors == (
        "production_credential", "customer_facing", "high_privilege", "alpha_risk", "zeta_risk"
    )


def test_config_refuses_a_malformed_factor_name(tmp_path: Path) -> None:
    cfg = tmp_path / "hitlgate.yaml"
    cfg.write_text("risk_factors: [Crown-Jewel]\n")
    with pytest.raises(ConfigError, match=r"risk_factors\[0\]: 'Crown-Jewel' does not match"):
        Config.from_file(cfg)


def test_config_reads_declared_factors(tmp_path: Path) -> None:
    cfg = tmp_path / "hitlgate.yaml"
    cfg.write_text("risk_factors:\n  - crown_jewel\n  - customer_data\n")
    assert Config.from_file(cfg).risk_factors == ("crown_jewel", "customer_data")


def test_stored_decision_with_a_custom_factor_reads_back() -> None:
    # A stored decision was checked against the factors declared when it was
    # made; reading it back checks its shape only.
    doc = Decision.failed_closed("x").to_dict() | {"risk_factors": ["crown_jewel"]}
    assert Decision.from_dict(doc).risk_factors == ("crown_jewel",)


def test_decision_schema_refuses_a_factor_that_is_not_a_name() -> None:
    doc = Decision.failed_closed("x").to_dict() | {"risk_factors": ["Crown Jewel"]}
    with pytest.raises(PolicyError, match=r"risk_factors\[0\]: 'Crown Jewel' does not match"):
        Decision.from_dict(doc)


def test_check_lists_every_unknown_factor() -> None:
    with pytest.raises(PolicyError, match=r"risk_factors\[1\]: 'a_b'.*risk_factors\[2\]: 'c_d'") as info:
        check_risk_factors(["irreversible", "a_b", "c_d"], ["crown_jewel"])
    assert info.value.problems == (
        "risk_factors[1]: 'a_b' is neither a built-in risk factor nor declared in hitlgate.yaml (risk_factors)",
        "risk_factors[2]: 'c_d' is neither a built-in risk factor nor declared in hitlgate.yaml (risk_factors)",
    )


def test_builtin_factors_are_the_packs_factor_order_plus_evaluation_error() -> None:
    # The schema's built-in list and the pack's fixed order must not drift apart.
    source = (bundled_policy_dir() / "decision.rego").read_text()
    block = re.search(r"^factor_order := \[(.*?)\]", source, re.S | re.M)
    assert block is not None
    order = re.findall(r'"([a-z_]+)"', block.group(1))
    assert (*order, "evaluation_error") == builtin_risk_factors()

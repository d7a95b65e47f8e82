"""``hitlgate init`` writes a project that shows a custom risk factor end to end.

A label in the inventory (``criticality: crown-jewel``) becomes the factor
``crown_jewel`` (declared in hitlgate.yaml), which requires dual approval;
the project carries a scenario and Rego unit tests for it, and they pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine import Config
from tests.conftest import make_proposal


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    result = CliRunner().invoke(cli, ["init", str(proj)])
    assert result.exit_code == 0, result.output
    return proj


def test_starter_declares_the_factor_its_rule_uses(project: Path) -> None:
    assert Config.from_file(project / "hitlgate.yaml").risk_factors == ("crown_jewel",)
    rule = (project / "policies" / "crown_jewel.rego").read_text()
    assert 'factor_present contains "crown_jewel" if crown_jewel' in rule
    labelled = yaml.safe_load((project / "policies" / "data" / "crown_jewels.yaml").read_text())
    assert labelled["identities"]["card-vault-key"]["labels"] == {"criticality": "crown-jewel"}


def test_crown_jewel_needs_dual_approval_in_the_starter(project: Path, tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps(make_proposal("rotate_api_key", "card-vault-key")))
    result = CliRunner().invoke(cli, ["--config", str(project / "hitlgate.yaml"), "decide", "--json", str(f)])
    decision = json.loads(result.stdout)
    assert decision["tier"] == "dual_approval"
    assert decision["risk_factors"] == ["production_credential", "crown_jewel"]


def test_starter_scenarios_pass_without_opa(project: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(project / "hitlgate.yaml"), "policy", "test", "--no-rego-tests"])
    assert result.exit_code == 0, result.output
    assert "scenarios: 51 passed, 0 failed" in result.output


def test_removing_the_declaration_fails_the_starter_scenarios(project: Path) -> None:
    cfg = project / "hitlgate.yaml"
    cfg.write_text(cfg.read_text().replace("  - crown_jewel\n", "  - crwn_jewel\n"))
    result = CliRunner().invoke(cli, ["--config", str(cfg), "policy", "test", "--no-rego-tests"])
    assert result.exit_code == 3
    assert "FAIL 2 cases failed closed: embedded backend: invalid decision document:" in result.output
    assert "'crown_jewel' is neither a built-in risk factor nor declared" in result.output
    assert "did you mean 'crwn_jewel'?" in result.output


@pytest.mark.opa
def test_starter_unit_tests_and_scenarios_pass(project: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(project / "hitlgate.yaml"), "policy", "test"])
    assert result.exit_code == 0, result.output
    assert "rego unit tests: ok (24 tests)" in result.output
    assert "scenarios: 51 passed, 0 failed (embedded backend)" in result.output


def test_request_with_a_custom_factor_is_stored_and_read_back(project: Path) -> None:
    # A stored decision is read back by shape only: its factors were checked
    # against the declaration when it was made.
    from hitlgate.engine.approve.workflow import Engine

    config = Config.from_file(project / "hitlgate.yaml")
    engine = Engine(config)
    request = engine.propose(make_proposal("rotate_api_key", "card-vault-key"))
    assert request.decision.risk_factors == ("production_credential", "crown_jewel")
    reread = Engine(config).get(request.id)
    assert reread.status == "pending"
    assert reread.decision.risk_factors == ("production_credential", "crown_jewel")
    assert reread.decision.quorum.required == 2

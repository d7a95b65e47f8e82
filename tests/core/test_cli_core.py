"""The core CLI: decide, policy test, init, demo (click's CliRunner, real engine)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hitlgate.cli import cli
from tests.conftest import make_proposal


def test_decide_human_readable(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps(make_proposal("rotate_api_key", "svc-payments-key")))
    result = CliRunner().invoke(cli, ["decide", str(f)])
    assert result.exit_code == 0, result.output
    assert "tier:          DUAL APPROVAL" in result.output
    assert "someone with the role security; a member of team-payments" in result.output


def test_decide_json_from_stdin() -> None:
    doc = json.dumps(make_proposal("invalidate_tokens", "staging-deploy-token"))
    result = CliRunner().invoke(cli, ["decide", "--json", "-"], input=doc)
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert decision["tier"] == "auto_allow"
    assert decision["policy_revision"].startswith("sha256:")


def test_policy_test_passes_on_the_pack() -> None:
    result = CliRunner().invoke(cli, ["policy", "test"])
    assert result.exit_code == 0, result.output
    assert "rego unit tests: ok" in result.output
    assert "0 failed" in result.output


def test_policy_test_fails_naming_a_changed_expectation(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["init", str(tmp_path / "proj")]).exit_code == 0
    seed = tmp_path / "proj" / "policies" / "scenarios" / "seed.yaml"
    text = seed.read_text()
    seed.write_text(text.replace("want_tier: dual_approval", "want_tier: auto_allow", 1))
    result = runner.invoke(cli, ["--config", str(tmp_path / "proj" / "hitlgate.yaml"), "policy", "test"])
    assert result.exit_code == 1
    assert "FAIL seed.yaml#2: Seed 2" in result.output
    assert "tier: want auto_allow, got dual_approval" in result.output


def test_policy_test_fails_on_a_broken_rego_unit_test(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["init", str(tmp_path / "proj")])
    tests = tmp_path / "proj" / "policies" / "decision_test.rego"
    tests.write_text(tests.read_text() + '\ntest_wrong if {\n\tdecide("rotate_api_key", "key-dev").tier == "deny"\n}\n')
    result = runner.invoke(cli, ["--config", str(tmp_path / "proj" / "hitlgate.yaml"), "policy", "test"])
    assert result.exit_code == 1
    assert "test_wrong: FAIL" in result.output


def test_init_then_decide_uses_the_project(tmp_path: Path) -> None:
    runner = CliRunner()
    proj = tmp_path / "proj"
    assert runner.invoke(cli, ["init", str(proj)]).exit_code == 0
    inv = proj / "policies" / "data" / "inventory.yaml"
    inv.write_text(inv.read_text().replace("protected:\n", "protected:\n  - staging-deploy-token\n"))
    f = tmp_path / "p.json"
    f.write_text(json.dumps(make_proposal("invalidate_tokens", "staging-deploy-token")))
    result = runner.invoke(cli, ["--config", str(proj / "hitlgate.yaml"), "decide", "--json", str(f)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["tier"] == "deny"
    # init refuses to overwrite a project.
    again = runner.invoke(cli, ["init", str(proj)])
    assert again.exit_code == 2
    assert "already has a hitlgate project" in again.output


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "hitlgate.yaml"
    cfg.write_text("policy: policies\nbackend: {kind: cloud}\n")
    result = CliRunner().invoke(cli, ["--config", str(cfg), "decide", "-"], input=json.dumps(make_proposal()))
    assert result.exit_code == 2
    assert "backend.kind: 'cloud' is not one of" in result.output


def test_demo_prints_the_five_seed_situations() -> None:
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    for n in range(1, 6):
        assert f"=== {n}. " in result.output
    assert result.output.count("tier:") >= 5
    for tier in ("AUTO-ALLOW", "SINGLE APPROVAL", "DUAL APPROVAL"):
        assert tier in result.output

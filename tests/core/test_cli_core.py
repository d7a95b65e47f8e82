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
    assert result.exit_code == 4, result.output  # approval required
    assert "tier:          DUAL APPROVAL" in result.output
    assert "someone with the role security; a member of team-payments" in result.output


def test_decide_json_from_stdin() -> None:
    doc = json.dumps(make_proposal("invalidate_tokens", "staging-deploy-token"))
    result = CliRunner().invoke(cli, ["decide", "--json", "-"], input=doc)
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
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
    assert result.exit_code == 3
    assert "FAIL seed.yaml#2: Seed 2" in result.output
    assert "tier: want auto_allow, got dual_approval" in result.output


def test_policy_test_fails_on_a_broken_rego_unit_test(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["init", str(tmp_path / "proj")])
    tests = tmp_path / "proj" / "policies" / "decision_test.rego"
    tests.write_text(tests.read_text() + '\ntest_wrong if {\n\tdecide("rotate_api_key", "key-dev").tier == "deny"\n}\n')
    result = runner.invoke(cli, ["--config", str(tmp_path / "proj" / "hitlgate.yaml"), "policy", "test"])
    assert result.exit_code == 3
    assert "FAIL hitlgate_test.test_wrong (" in result.output


def test_init_then_decide_uses_the_project(tmp_path: Path) -> None:
    runner = CliRunner()
    proj = tmp_path / "proj"
    assert runner.invoke(cli, ["init", str(proj)]).exit_code == 0
    inv = proj / "policies" / "data" / "inventory.yaml"
    inv.write_text(inv.read_text().replace("protected:\n", "protected:\n  - staging-deploy-token\n"))
    f = tmp_path / "p.json"
    f.write_text(json.dumps(make_proposal("invalidate_tokens", "staging-deploy-token")))
    result = runner.invoke(cli, ["--config", str(proj / "hitlgate.yaml"), "decide", "--json", str(f)])
    assert result.exit_code == 3, result.output  # a deny the policy decided
    assert json.loads(result.stdout)["tier"] == "deny"
    assert "fail_closed" not in json.loads(result.stdout)
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


def test_demo_names_situations_and_ends_with_next_steps() -> None:
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    lines = out.splitlines()
    assert lines[0].startswith("This demo shows how hitlgate decides")
    assert len(lines) < 150
    for n in range(1, 6):
        assert f"\n{n}. " in out
    assert "Seed" not in out
    assert "Anomalous token use on a service account" in out
    assert "(b) a partner with a safe fallback" in out
    assert "OWASP Non-Human Identity Top 10 NHI-07" in out and "NIST CSF 2.0 RS.MA" in out
    for tier in ("AUTO-ALLOW", "SINGLE APPROVAL", "DUAL APPROVAL"):
        assert tier in out
    assert "/tmp" not in out and "hitlgate-demo-" not in out
    assert "8 actions ran, each only with its own warrant; 8 replays refused." in out
    assert [line.split("#")[0].strip() for line in lines[-3:]] == [
        "hitlgate init my-project", "cd my-project && hitlgate decide proposal.json", "hitlgate policy test"
    ]


def test_demo_shows_an_approval_window_only_where_approval_is_needed() -> None:
    out = CliRunner().invoke(cli, ["demo", "--decisions-only"]).stdout
    blocks = out.split("   proposal:  ")[1:]
    auto = [b for b in blocks if "decision:  AUTO-ALLOW" in b]
    assert len(auto) == 2 and not any("within" in b for b in auto)
    want = "quorum:    2 distinct approvals within 2 h: someone with the role security; a member of team-payments"
    assert want in out
    assert "run:" not in out


def test_decide_shows_no_window_on_an_auto_allow(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps(make_proposal("invalidate_tokens", "staging-deploy-token")))
    out = CliRunner().invoke(cli, ["decide", str(f)]).stdout
    assert "tier:          AUTO-ALLOW" in out
    assert "window:" not in out and "ttl" not in out
    assert "controls:      OWASP Non-Human Identity Top 10 NHI-07, OWASP Agentic AI Top 10 A-03" in out

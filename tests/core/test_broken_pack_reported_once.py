"""One root cause, one report: a pack that does not load or compile is reported once by ``policy test``.

The report names each problem as ``file:line:col: message`` with the source
line (``opa check`` style), blames the right file and line, and nothing
else runs: no unit tests, no scenario corpus, no log line per case.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hitlgate.cli import cli
from hitlgate.engine.decide._rego_errors import RegoCompileError
from hitlgate.engine.decide._regopy import compile_pack
from hitlgate.engine.decide.policy import PolicyPack
from tests._cli_process import HITLGATE, cli_env


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A starter project, with the working directory at its root (as a user runs it)."""
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    monkeypatch.chdir(proj)
    return proj


BRACE_OLD = 'tier := "deny" if deny_row\n'
BRACE_NEW = 'tier := "deny" if deny_row {\n'


def _policy_test(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", "hitlgate.yaml", "policy", "test", *args])


def _break_line(path: Path, old: str, new: str) -> int:
    """Replace ``old`` by ``new`` in ``path``; return the 1-based line it is on."""
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def _assert_nothing_else_ran(result: Result) -> None:
    assert "scenarios:" not in result.output
    assert "FAIL" not in result.output
    assert "rego unit tests" not in result.output
    assert "ERROR" not in result.output


def test_unclosed_brace_without_opa_is_one_report_at_the_brace(project: Path) -> None:
    line = _break_line(project / "policies" / "decision.rego", BRACE_OLD, BRACE_NEW)
    result = _policy_test("--no-rego-tests")
    assert result.exit_code == 5, result.output
    col = len('tier := "deny" if deny_row {')
    assert f"policies/decision.rego:{line}:{col}: '{{' is not closed" in result.output
    assert "error: policy pack does not compile (regopy): 1 error" in result.output
    # rego-cpp also blames the `package` line; that echo is dropped.
    assert "package hitlgate" not in result.output
    assert "rego-errorseq" not in result.output
    _assert_nothing_else_ran(result)


def test_error_in_a_second_module_blames_that_module(project: Path) -> None:
    (project / "policies" / "helpers.rego").write_text("package hitlgate\n\n# sum\nhelper := 1 +\n", encoding="utf-8")
    result = _policy_test("--no-rego-tests")
    assert result.exit_code == 5, result.output
    assert "policies/helpers.rego:4:" in result.output
    assert "policies/decision.rego" not in result.output
    _assert_nothing_else_ran(result)


def test_column_counts_characters_not_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # regopy reports byte offsets; a line with multi-byte characters before
    # the error must not shift the column. Files are named relative to the
    # working directory, as policy test names them.
    monkeypatch.chdir(tmp_path)
    policy_dir = tmp_path / "policies"
    (policy_dir / "data").mkdir(parents=True)
    (policy_dir / "data" / "inventory.yaml").write_text("teams: {t: {}}\n", encoding="utf-8")
    (policy_dir / "decision.rego").write_text(
        'package hitlgate\n\n# Déjà vu, naïve café\ndecision := {"ünïcode": [1, 2}\n', encoding="utf-8"
    )
    pack = PolicyPack.load(policy_dir, [policy_dir / "data"])
    with pytest.raises(RegoCompileError, match=r"decision\.rego:4:25: '\[' is not closed") as info:
        compile_pack(pack)
    assert [str(p) for p in info.value.rego_problems] == [
        "policies/decision.rego:4:25: '[' is not closed",
        "policies/decision.rego:4:13: '{' is not closed",
    ]
    assert info.value.rego_problems[0].source_line == 'decision := {"ünïcode": [1, 2}'


def test_bad_inventory_is_one_report_and_no_corpus(project: Path) -> None:
    inv = project / "policies" / "data" / "crown_jewels.yaml"
    line = _break_line(inv, "    privilege: medium\n", "    privilege: medium\n    tags: [crown_jewel]\n")
    result = _policy_test("--no-rego-tests")
    assert result.exit_code == 5, result.output
    assert "policy pack does not load: invalid inventory: 1 problem(s)" in result.output
    assert (
        f"policies/data/crown_jewels.yaml:{line + 1}: identities.card-vault-key: "
        "Additional properties are not allowed ('tags' was unexpected)"
    ) in result.output
    assert result.output.count("tags") == 1
    _assert_nothing_else_ran(result)


def test_dangling_reference_names_the_file_and_line_that_holds_it(project: Path) -> None:
    inv = project / "policies" / "data" / "crown_jewels.yaml"
    line = _break_line(inv, "    owner: team-payments\n", "    owner: team-paymnts\n")
    result = _policy_test("--no-rego-tests")
    assert result.exit_code == 5, result.output
    assert (
        f"policies/data/crown_jewels.yaml:{line}: identities.card-vault-key.owner: unknown team 'team-paymnts'"
    ) in result.output
    _assert_nothing_else_ran(result)


def test_broken_pack_under_json_is_one_error_with_problems(project: Path) -> None:
    _break_line(project / "policies" / "decision.rego", "else := \"auto_allow\"\n", "else := = \"auto_allow\"\n")
    result = _policy_test("--no-rego-tests", "--json")
    assert result.exit_code == 5, result.output
    assert "rego unit tests" not in result.output
    assert "scenario_results" not in result.output


@pytest.mark.opa
def test_syntax_error_with_opa_is_one_report_and_no_unit_test_run(project: Path) -> None:
    line = _break_line(project / "policies" / "decision.rego", BRACE_OLD, BRACE_NEW)
    result = _policy_test()
    assert result.exit_code == 5, result.output
    assert "error: policy pack does not compile (opa check --strict): 1 error" in result.output
    # The first else is two lines down: opa fmt puts a blank line between the branches of an else chain.
    assert f"policies/decision.rego:{line + 2}:1: rego_parse_error: unexpected else keyword" in result.output
    assert "FAILED (0 tests)" not in result.output
    _assert_nothing_else_ran(result)


@pytest.mark.opa
def test_undefined_function_is_caught_before_any_scenario(project: Path) -> None:
    # regopy compiles a call to an unknown function and fails only when a
    # query reaches it; opa check catches it up front.
    line = _break_line(
        project / "policies" / "crown_jewel.rego",
        'crown_jewel if identity.labels.criticality == "crown-jewel"\n',
        'crown_jewel if lookup_label(identity) == "crown-jewel"\n',
    )
    result = _policy_test()
    assert result.exit_code == 5, result.output
    assert f"policies/crown_jewel.rego:{line}:16: rego_type_error: undefined function lookup_label" in result.output
    _assert_nothing_else_ran(result)


@pytest.mark.opa
def test_failing_unit_test_still_runs_the_corpus(project: Path) -> None:
    tests = project / "policies" / "crown_jewel_test.rego"
    tests.write_text(tests.read_text() + '\ntest_wrong if {\n\tdecide("rotate_api_key", "plain").tier == "deny"\n}\n')
    result = _policy_test()
    assert result.exit_code == 3, result.output
    assert "rego unit tests: FAILED (1 of 25 tests failed)" in result.output
    line = tests.read_text().splitlines().index("test_wrong if {") + 1
    assert (
        f"FAIL crown_jewel_test.test_wrong (policies/crown_jewel_test.rego:{line})\n"
        f"    failed at line {line + 1}: decide(\"rotate_api_key\", \"plain\").tier == \"deny\"\n"
    ) in result.output
    assert "scenarios: 51 passed, 0 failed" in result.output


@pytest.mark.opa
def test_renamed_factor_reports_each_failing_rego_test_once_without_the_trace(project: Path) -> None:
    # The new user's case: a typo in a starter rule's factor name used to
    # print opa's whole -v trace (hundreds of Enter/Fail lines) per failure.
    _break_line(
        project / "policies" / "crown_jewel.rego",
        'factor_present contains "crown_jewel" if crown_jewel\n',
        'factor_present contains "crown_jewl" if crown_jewel\n',
    )
    result = _policy_test()
    assert result.exit_code == 3, result.output
    rego_part = result.output.split("rego unit tests: FAILED")[0]
    assert "Enter data." not in result.output and "| Fail " not in result.output
    assert rego_part.splitlines() == [
        "FAIL crown_jewel_test.test_crown_jewel_needs_dual_approval (policies/crown_jewel_test.rego:32)",
        '    failed at line 35: d.risk_factors == ["production_credential", "crown_jewel"]',
        "FAIL crown_jewel_test.test_informing_the_owner_of_a_crown_jewel_auto_allows "
        "(policies/crown_jewel_test.rego:46)",
        '    failed at line 49: "crown_jewel" in d.risk_factors',
    ]
    assert "rego unit tests: FAILED (2 of 24 tests failed)" in result.output
    as_json = CliRunner().invoke(cli, ["--json", "--config", "hitlgate.yaml", "policy", "test"])
    assert as_json.exit_code == 3
    assert len(as_json.stdout) < 5000, f"--json policy test printed {len(as_json.stdout)} bytes"
    rego = json.loads(as_json.stdout)["rego_tests"]
    assert "output" not in rego
    assert [(f["name"], f["file"], f["line"]) for f in rego["failures"]] == [
        ("crown_jewel_test.test_crown_jewel_needs_dual_approval", "policies/crown_jewel_test.rego", 32),
        ("crown_jewel_test.test_informing_the_owner_of_a_crown_jewel_auto_allows", "policies/crown_jewel_test.rego",
         46),
    ]
    verbose = CliRunner().invoke(cli, ["-v", "--config", "hitlgate.yaml", "policy", "test"])
    assert "Enter data.crown_jewel_test.test_crown_jewel_needs_dual_approval" in verbose.output


def test_cases_failing_closed_for_one_reason_are_reported_once(project: Path) -> None:
    # Nothing listens on port 9: every case fails closed the same way.
    result = _policy_test("--no-rego-tests", "--backend", "opa", "--opa-url", "http://127.0.0.1:9")
    assert result.exit_code == 3, result.output
    assert result.output.count("failed closed") == 1
    assert "FAIL 51 cases failed closed: opa backend: OPA at http://127.0.0.1:9 is unreachable" in result.output
    assert "auto.yaml#0, auto.yaml#1, auto.yaml#2 and 48 more" in result.output
    assert "ERROR" not in result.output
    assert "scenarios: 0 passed, 51 failed (opa backend)" in result.output


def test_json_report_groups_cases_that_failed_closed(project: Path) -> None:
    result = _policy_test("--no-rego-tests", "--json", "--backend", "opa", "--opa-url", "http://127.0.0.1:9")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    [group] = report["scenario_results"]["failed_closed"]
    assert len(group["cases"]) == 51
    assert group["reason"].startswith("fail closed: opa backend:")


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A real process, so log lines reach the real stderr (CliRunner does not
    # capture logging handlers configured before it swapped the streams).
    return subprocess.run(
        [*HITLGATE, "--config", str(project / "hitlgate.yaml"), "policy", "test", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=project, env=cli_env(),
    )


def test_bad_inventory_prints_one_error_and_no_log_lines(project: Path) -> None:
    inv = project / "policies" / "data" / "crown_jewels.yaml"
    _break_line(inv, "    privilege: medium\n", "    privilege: medium\n    tags: [crown_jewel]\n")
    proc = _run(project, "--no-rego-tests")
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("'tags' was unexpected") == 1
    assert len(proc.stderr.splitlines()) == 2, proc.stderr


def test_unreachable_backend_prints_no_log_line_per_case(project: Path) -> None:
    proc = _run(project, "--no-rego-tests", "--backend", "opa", "--opa-url", "http://127.0.0.1:9")
    assert proc.returncode == 3
    assert proc.stdout.count("failed closed") == 1
    # The OPA backend logs the outage once when it starts; not once per case.
    assert proc.stderr.count("ERROR") <= 1, proc.stderr


def test_one_bad_operator_is_one_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # rego-cpp reports `:= =` once per token; the user sees it once.
    policy_dir = tmp_path / "policies"
    (policy_dir / "sub" / "data").mkdir(parents=True)
    monkeypatch.chdir(policy_dir)  # files are named relative to the working directory
    (policy_dir / "sub" / "data" / "inventory.yaml").write_text("teams: {t: {}}\n", encoding="utf-8")
    (policy_dir / "sub" / "rules.rego").write_text("package hitlgate\n\ndecision := = 3\n", encoding="utf-8")
    pack = PolicyPack.load(policy_dir, [policy_dir / "sub" / "data"])
    with pytest.raises(RegoCompileError, match=r"^policy does not compile \(regopy\): sub/rules\.rego:3:10: ") as info:
        compile_pack(pack)
    assert [str(p) for p in info.value.rego_problems] == ["sub/rules.rego:3:10: Invalid assignment operator"]

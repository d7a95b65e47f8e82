"""``hitlgate policy check`` fails (exit 1) on each broken pull request, naming the file and line in every format.

Each change is one pull request against the committed project: a module
that does not compile, an inventory reference to nothing, a scenario whose
expectation the policy no longer meets, a pack without unit tests, and a
new module no test covers. Each is checked once (all formats written in
the same run) and every format must carry the failure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.policyci.conftest import Run, clone, edit, run_check, working_directory
from tests.policyci.formats import annotations, junit_failures, sarif_places, sarif_results

#: Real OPA (opa check, fmt, test and a server) runs in every check.
pytestmark = pytest.mark.opa

BROKEN_MODULE = "package hitlgate\n\nbroken_rule if {\n\tinput.action.type ==\n"

UNTESTED_MODULE = """package hitlgate

# Rules no unit test reaches: the coverage drops below the threshold.
audit_note := concat("", ["audited ", target_id]) if {
	action_type == "open_ticket"
	startswith(target_id, "legacy-")
}

audit_note := concat("", ["reviewed ", target_id]) if {
	action_type == "notify_owner"
	startswith(target_id, "legacy-")
}

legacy_target if startswith(target_id, "legacy-")

legacy_owner := owner if legacy_target

legacy_team_count := count([t | t := inventory.teams[_]]) if legacy_target
"""


@pytest.fixture(scope="module")
def compile_error(base_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    project = clone(base_repo, tmp_path_factory.mktemp("compile") / "repo")
    (project / "policies" / "broken.rego").write_text(BROKEN_MODULE)
    return run_check(project)


@pytest.fixture(scope="module")
def broken_reference(base_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    project = clone(base_repo, tmp_path_factory.mktemp("reference") / "repo")
    edit(project / "policies" / "data" / "inventory.yaml", "used_by: [batch-reports]", "used_by: [no-such-workload]")
    return run_check(project)


@pytest.fixture(scope="module")
def failing_scenario(base_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    project = clone(base_repo, tmp_path_factory.mktemp("scenario") / "repo")
    edit(project / "policies" / "scenarios" / "single.yaml", "want_tier: single_approval", "want_tier: auto_allow")
    return run_check(project)


@pytest.fixture(scope="module")
def no_tests(base_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    project = clone(base_repo, tmp_path_factory.mktemp("notests") / "repo")
    for test in (project / "policies").glob("*_test.rego"):
        test.unlink()
    return run_check(project)


@pytest.fixture(scope="module")
def coverage_drop(base_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    project = clone(base_repo, tmp_path_factory.mktemp("coverage") / "repo")
    (project / "policies" / "legacy.rego").write_text(UNTESTED_MODULE)
    # The threshold comes from the project's configuration.
    with (project / "hitlgate.yaml").open("a") as fh:
        fh.write("policy_check:\n  coverage_threshold: 95\n")
    return run_check(project)


def _failed(run: Run) -> set[str]:
    return {s["id"] for s in run.doc["steps"] if s["status"] == "failed"}


def test_compile_error_fails_with_its_place_in_every_format(compile_error: Run) -> None:
    run = compile_error
    assert run.exit_code == 1, run.stdout
    assert {"opa-check", "regopy"} <= _failed(run)
    finding = run.step("opa-check")["findings"][0]
    assert (finding["file"], finding["line"]) == ("policies/broken.rego", 5)
    assert "rego_parse_error" in finding["message"]
    # Nothing downstream is failed a second time for the same cause.
    assert run.step("opa-test")["status"] == "skipped"
    assert ("proj/policies/broken.rego", 5) in sarif_places(run.outputs["sarif"], "opa-check")
    assert any("policies/broken.rego:5" in text for texts in junit_failures(run.outputs["junit"]).values()
               for text in texts)
    assert {"level": "error", "file": "proj/policies/broken.rego", "line": "5", "col": finding["col"] and str(
        finding["col"]), "title": "hitlgate opa check --strict", "message": finding["message"]} in annotations(
        run.outputs["github"])
    assert "`policies/broken.rego:5" in run.outputs["markdown"]
    assert "policies/broken.rego:5" in run.outputs["text"]


def test_sarif_and_github_paths_are_repository_relative_and_encoded(tmp_path: Path) -> None:
    """SARIF and GitHub resolve paths from the checkout's root, not the cwd; a SARIF uri is percent-encoded."""
    from hitlgate.engine.decide._policycheck import CheckReport, Finding, Step
    from hitlgate.engine.decide._policyreport import github, sarif

    step = Step("opa-check", "opa check --strict")
    step.fail(Finding("bad", "policies/a b#1.rego", 3))
    report = CheckReport(policy_dir="policies", steps=[step], repo_root=str(tmp_path))
    (tmp_path / "proj").mkdir()
    with working_directory(tmp_path / "proj"):
        doc = sarif(report)
        out = github(report)
    uri = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "proj/policies/a%20b%231.rego"
    assert "file=proj/policies/a b#1.rego,line=3" in out


def test_broken_data_reference_names_file_and_line(broken_reference: Run) -> None:
    run = broken_reference
    assert run.exit_code == 1
    assert _failed(run) == {"data"}
    findings = run.step("data")["findings"]
    assert [(f["file"], f["line"], f["message"]) for f in findings] == [
        ("policies/data/inventory.yaml", 97,
         "identities.svc-reporting.used_by[0]: unknown workload 'no-such-workload'"),
    ]
    # The scenarios would all fail closed on a broken inventory: skipped, not failed again.
    assert run.step("scenarios-embedded")["status"] == "skipped"
    assert sarif_places(run.outputs["sarif"], "data") == [("proj/policies/data/inventory.yaml", 97)]
    inventory = "proj/policies/data/inventory.yaml"
    assert [a["line"] for a in annotations(run.outputs["github"]) if a.get("file") == inventory] == ["97"]
    assert "unknown workload 'no-such-workload'" in json.dumps(junit_failures(run.outputs["junit"]))


def test_failing_scenario_fails_on_both_engines_with_its_line(failing_scenario: Run) -> None:
    run = failing_scenario
    assert run.exit_code == 1
    assert _failed(run) == {"scenarios-embedded", "scenarios-opa"}
    for step in ("scenarios-embedded", "scenarios-opa"):
        (finding,) = run.step(step)["findings"]
        assert (finding["file"], finding["line"]) == ("policies/scenarios/single.yaml", 3)
        assert "tier: want auto_allow, got single_approval" in finding["message"]
    assert ("proj/policies/scenarios/single.yaml", 3) in sarif_places(run.outputs["sarif"], "scenarios-opa")
    failures = junit_failures(run.outputs["junit"])
    assert set(failures) == {"scenario corpus on the embedded engine", "scenario corpus on OPA"}


def test_empty_test_directory_is_a_failure_not_a_pass(no_tests: Run) -> None:
    run = no_tests
    assert run.exit_code == 1
    assert _failed(run) == {"opa-test"}
    assert "no *_test.rego files in policies" in run.step("opa-test")["findings"][0]["message"]
    assert run.step("coverage")["status"] == "skipped"
    assert "opa test" in junit_failures(run.outputs["junit"])
    assert "❌ failed" in run.outputs["markdown"]


def test_coverage_below_the_configured_threshold_fails(coverage_drop: Run) -> None:
    run = coverage_drop
    assert run.exit_code == 1
    assert _failed(run) == {"coverage"}
    step = run.step("coverage")
    assert step["title"] == "test coverage >= 95%"
    first = step["findings"][0]
    assert first["level"] == "error" and "is below the threshold of 95%" in first["message"]
    # Each uncovered range is named (as a note) so the author sees what to test.
    assert ("policies/legacy.rego", 4) in [(f["file"], f["line"]) for f in step["findings"][1:]]
    levels = {(r["ruleId"], r["level"]) for r in sarif_results(run.outputs["sarif"])}
    assert ("coverage", "error") in levels and ("coverage", "note") in levels


@pytest.mark.parametrize("fixture", ["compile_error", "broken_reference", "failing_scenario", "no_tests",
                                     "coverage_drop"])
def test_every_format_agrees_on_the_failure(request: pytest.FixtureRequest, fixture: str) -> None:
    run: Run = request.getfixturevalue(fixture)
    doc = run.doc
    assert doc["ok"] is False and doc["checks_ok"] is False and doc["diff"] is None
    failed_titles = [s["title"] for s in doc["steps"] if s["status"] == "failed"]
    # JUnit: one failing test case per failed check.
    assert sorted(junit_failures(run.outputs["junit"])) == sorted(failed_titles)
    # SARIF: schema-valid, an error result for each failed check.
    errors = {r["ruleId"] for r in sarif_results(run.outputs["sarif"]) if r["level"] == "error"}
    assert errors == {s["id"] for s in doc["steps"] if s["status"] == "failed"}
    # GitHub: the last line is the verdict; each failed check has an error annotation.
    lines = run.outputs["github"].splitlines()
    assert lines[-1].startswith("hitlgate policy check: FAILED: ")
    titles = {a["title"] for a in annotations(run.outputs["github"]) if a["level"] == "error"}
    assert titles == {f"hitlgate {t}" for t in failed_titles}
    # Markdown: a table row per check, and the same text in $GITHUB_STEP_SUMMARY.
    for title in failed_titles:
        assert f"| {title} | ❌ failed |" in run.outputs["markdown"]
    assert run.outputs["step-summary"] == run.outputs["markdown"]
    # Text (stdout): the verdict line.
    assert run.stdout.rstrip().splitlines()[-1].startswith("result: FAILED: ")

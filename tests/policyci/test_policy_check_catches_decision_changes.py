"""``policy check --base main`` reports each decision a pull request changes, and fails on a loosening.

Three pull requests against the committed project, each otherwise valid
(every check passes), so the exit code comes from the diff alone:

* a loosening: the single-approval slot also accepts the role ``sre``
  (the unit test updated with it, so only the diff can catch it);
* a tightening: the single-approval slot drops the owner's team;
* an inventory-only change: the workload build-pipeline leaves production,
  so isolating it no longer needs an approval.

The loosening run also replays the base project's real ``hitlgate audit
export`` and a JSON Lines file of proposals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_proposal
from tests.policyci.conftest import Run, clone, edit, run_check
from tests.policyci.formats import annotations, junit_failures, sarif_results

#: Real OPA (opa check, fmt, test and a server) runs in every check.
pytestmark = pytest.mark.opa

SINGLE_QUORUM = 'quorum := {"required": 1, "slots": [{"roles": ["security"], "teams": [owner]}]}'
SINGLE_TEST = 'd.quorum == {"required": 1, "slots": [{"roles": ["security"], "teams": ["team-a"]}]}'


@pytest.fixture(scope="module")
def loosening(base_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    project = clone(base_repo, tmp_path_factory.mktemp("loosening") / "repo")
    edit(project / "policies" / "decision.rego", SINGLE_QUORUM, SINGLE_QUORUM.replace('["security"]',
                                                                                     '["security", "sre"]'))
    edit(project / "policies" / "decision_test.rego", SINGLE_TEST, SINGLE_TEST.replace('["security"]',
                                                                                     '["security", "sre"]'))
    proposals = project.parent.parent / "proposals.jsonl"
    lines = [make_proposal("rotate_api_key", "reporting-db-secret", justification=f"case {i}") for i in range(3)]
    lines.append(make_proposal("rotate_api_key", "dev-analytics-key"))
    proposals.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    audit = base_repo.parent / "audit.jsonl"
    first = run_check(project, "--base", "main", "--replay", str(audit))
    first.outputs["proposals"] = str(proposals)
    return first


@pytest.fixture(scope="module")
def loosening_replayed_jsonl(loosening: Run, base_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    project = clone(base_repo, tmp_path_factory.mktemp("loosening-jsonl") / "repo")
    edit(project / "policies" / "decision.rego", SINGLE_QUORUM, SINGLE_QUORUM.replace('["security"]',
                                                                                     '["security", "sre"]'))
    edit(project / "policies" / "decision_test.rego", SINGLE_TEST, SINGLE_TEST.replace('["security"]',
                                                                                     '["security", "sre"]'))
    return run_check(project, "--base", "main", "--replay", loosening.outputs["proposals"], "--fail-on", "never")


@pytest.fixture(scope="module")
def tightening(base_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    project = clone(base_repo, tmp_path_factory.mktemp("tightening") / "repo")
    edit(project / "policies" / "decision.rego", SINGLE_QUORUM, SINGLE_QUORUM.replace("[owner]", "[]"))
    edit(project / "policies" / "decision_test.rego", SINGLE_TEST, SINGLE_TEST.replace('["team-a"]', "[]"))
    return run_check(project, "--base", "main", "--fail-on", "any-change")


@pytest.fixture(scope="module")
def inventory_only(base_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    project = clone(base_repo, tmp_path_factory.mktemp("inventory") / "repo")
    edit(project / "policies" / "data" / "inventory.yaml",
         "  build-pipeline:\n    environment: production", "  build-pipeline:\n    environment: development")
    return run_check(project, "--base", "main")


def _changes(run: Run) -> list[dict[str, Any]]:
    return list(run.doc["diff"]["changes"])


def test_loosened_quorum_fails_the_check_although_every_test_passes(loosening: Run) -> None:
    run = loosening
    assert run.exit_code == 1, run.stdout
    doc = run.doc
    assert doc["checks_ok"] is True and doc["ok"] is False
    changes = _changes(run)
    assert {c["direction"] for c in changes} == {"loosening"}
    assert {(c["base_tier"], c["head_tier"]) for c in changes} == {("single_approval", "single_approval")}
    assert all(not c["factors_added"] and not c["factors_removed"] for c in changes)
    for c in changes:
        assert all(q.endswith("1 of [role security or role sre]") or "role sre or team" in q
                   for q in c["quorum_changes"]), c["quorum_changes"]
    assert doc["diff"]["forbidden"] == sum(len(c["proposals"]) for c in changes) > 0


def test_replayed_audit_export_decisions_are_compared(loosening: Run) -> None:
    diff = loosening.doc["diff"]
    # The base project proposed three actions before it was committed; the export holds them.
    assert diff["compared"]["replay"] == 3
    replayed = [p for c in diff["changes"] for p in c["proposals"] if p["source"].startswith("replay audit.jsonl:")]
    # svc-reporting and build-pipeline needed one approval: both change; dev-analytics-key was auto-allowed.
    assert sorted(p["target"] for p in replayed) == ["build-pipeline", "svc-reporting"]


def test_replayed_jsonl_proposals_and_fail_on_never(loosening_replayed_jsonl: Run) -> None:
    run = loosening_replayed_jsonl
    assert run.exit_code == 0, run.stdout
    diff = run.doc["diff"]
    assert diff["compared"]["replay"] == 4
    assert diff["forbidden"] == 0 and diff["fail_on"] == "never"
    replayed = sorted(p["source"] for c in diff["changes"] for p in c["proposals"] if p["source"].startswith("replay"))
    assert replayed == ["replay proposals.jsonl:1", "replay proposals.jsonl:2", "replay proposals.jsonl:3"]
    # Three proposals that differ only in their justification are one evaluation per side:
    # the pack never reads the justification.
    assert diff["evaluations"]["head"] < sum(diff["compared"].values())


def test_tightened_quorum_is_reported_as_tightening(tightening: Run) -> None:
    run = tightening
    # Every check passes; --fail-on any-change makes a tightening fail too.
    assert run.doc["checks_ok"] is True
    assert run.exit_code == 1
    changes = _changes(run)
    assert {c["direction"] for c in changes} == {"tightening"}
    assert all(c["summary"].endswith("(policy change)") for c in changes)
    assert all(q.endswith("→ 1 of [role security]") for c in changes for q in c["quorum_changes"])


def test_inventory_only_change_is_found_and_explained(inventory_only: Run) -> None:
    run = inventory_only
    assert run.exit_code == 1
    assert run.doc["checks_ok"] is True
    change, *neutral = _changes(run)
    # The factor also leaves the decisions whose tier stays (denies and notifications): reported as neutral.
    assert [(c["direction"], c["base_tier"], len(c["proposals"])) for c in neutral] == [
        ("neutral", "deny", 18), ("neutral", "auto_allow", 6)]
    assert change["summary"] == ("3 proposals on 1 target: single_approval → auto_allow because "
                                 "production_workload no longer applies (inventory change)")
    assert change["direction"] == "loosening" and change["cause"] == "inventory"
    assert change["factors_removed"] == ["production_workload"]
    assert change["inventory_changes"] == {'workloads.build-pipeline.environment: "production" → "development"': 3}
    assert sorted((p["action_type"], p["target"], p["requester_kind"]) for p in change["proposals"]) == [
        ("isolate_workload", "build-pipeline", kind) for kind in ("agent", "human", "service")
    ]
    # Same modules on both sides: only the targets whose facts changed (build-pipeline, and the
    # identities it uses) were evaluated, not the whole sweep.
    diff = run.doc["diff"]
    assert diff["evaluations"]["base"] == diff["evaluations"]["head"] < diff["compared"]["sweep"] / 5


def test_inventory_only_change_in_every_format(inventory_only: Run) -> None:
    run = inventory_only
    summary = _changes(run)[0]["summary"]
    assert "NEUTRAL: 18 proposals on 1 target: deny (tier unchanged)" in run.outputs["text"]
    assert f"FORBIDDEN LOOSENING: {summary}" in run.outputs["text"]
    assert 'inventory: workloads.build-pipeline.environment: "production" → "development"' in run.outputs["text"]
    markdown = run.outputs["markdown"]
    assert "### Decision changes against `main`" in markdown
    assert f"| 🔓 loosening **(forbidden)** | {summary} | `single_approval` → `auto_allow` | -production_workload |" \
        in markdown
    assert run.outputs["step-summary"] == markdown
    failures = junit_failures(run.outputs["junit"])
    assert list(failures) == [f"loosening: {summary}"]
    results = [r for r in sarif_results(run.outputs["sarif"]) if r["ruleId"].startswith("decision-")]
    assert sorted((r["ruleId"], r["level"]) for r in results) == [
        ("decision-loosening", "error"), ("decision-neutral", "note"), ("decision-neutral", "note")]
    result = results[0]
    assert result["ruleId"] == "decision-loosening" and result["level"] == "error"
    assert result["message"]["text"].startswith(summary)
    errors = [a for a in annotations(run.outputs["github"]) if a["level"] == "error"]
    assert [a["title"] for a in errors] == ["decision loosening"]
    assert errors[0]["message"].startswith(summary)


def test_no_change_passes(base_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    project = clone(base_repo, tmp_path_factory.mktemp("unchanged") / "repo")
    run = run_check(project, "--base", "main")
    assert run.exit_code == 0, run.stdout
    diff = run.doc["diff"]
    assert diff["changes"] == [] and diff["summary"].startswith("no decision changed")
    # Nothing changed at all: no proposal needed evaluating.
    assert diff["evaluations"] == {"base": 0, "head": 0}
    assert "no decision changed" in run.outputs["markdown"]
    assert junit_failures(run.outputs["junit"]) == {}

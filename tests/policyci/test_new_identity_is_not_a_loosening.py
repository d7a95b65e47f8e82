"""Adding an identity to the inventory is a new target, not 16 loosenings of an unknown target's decision.

The base fails closed on a target it does not know; the head decides it.
That used to count as loosening (and failed the default check) with the
misleading detail "teams.team-data added" for a team that existed all
along.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policyci.conftest import Run, clone, edit, run_check

pytestmark = pytest.mark.opa

NEW = "identities:\n  svc-new-key:\n    kind: api_key\n    environment: production\n    owner: team-data\n" \
      "    privilege: medium\n    used_by: []\n"


def _pr(base_repo: Path, tmp: Path, *args: str) -> Run:
    project = clone(base_repo, tmp / "repo")
    edit(project / "policies" / "data" / "inventory.yaml", "identities:\n", NEW)
    return run_check(project, "--base", "main", *args)


def test_new_identity_passes_fail_on_loosening(base_repo: Path, tmp_path: Path) -> None:
    run = _pr(base_repo, tmp_path)
    assert run.exit_code == 0, run.stdout
    changes = run.doc["diff"]["changes"]
    assert {c["direction"] for c in changes} == {"new target"}, changes
    assert changes[0]["targets"] == ["svc-new-key"]
    assert "on 1 new target" in run.stdout
    assert "added" not in run.stdout.split("decision diff against")[1]


def test_new_identity_fails_any_change(base_repo: Path, tmp_path: Path) -> None:
    run = _pr(base_repo, tmp_path, "--fail-on", "any-change")
    assert run.exit_code == 1, run.stdout
    assert "forbids" in run.stdout


def test_owner_change_does_not_call_an_existing_team_added(base_repo: Path, tmp_path: Path) -> None:
    project = clone(base_repo, tmp_path / "repo")
    edit(project / "policies" / "data" / "inventory.yaml", "    owner: team-payments\n", "    owner: team-data\n")
    run = _pr_run(project)
    details = [d for c in run.doc["diff"]["changes"] for d in c["inventory_changes"]]
    assert details, run.stdout
    assert not any(d.endswith(" added") or d.endswith(" removed") for d in details), details


def _pr_run(project: Path) -> Run:
    return run_check(project, "--base", "main", "--fail-on", "never")

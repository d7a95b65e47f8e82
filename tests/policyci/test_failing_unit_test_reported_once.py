"""A failing ``opa test`` is one failure: the coverage row is skipped, not failed with raw opa output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policyci.conftest import clone, edit, run_check

pytestmark = pytest.mark.opa

SINGLE_TEST = 'd.quorum == {"required": 1, "slots": [{"roles": ["security"], "teams": ["team-a"]}]}'


def test_failing_unit_test_is_reported_once(base_repo: Path, tmp_path: Path) -> None:
    project = clone(base_repo, tmp_path / "repo")
    edit(project / "policies" / "decision_test.rego", SINGLE_TEST, SINGLE_TEST.replace("team-a", "team-z"))
    run = run_check(project)
    assert run.exit_code == 1
    assert {s["id"] for s in run.doc["steps"] if s["status"] == "failed"} == {"opa-test"}
    assert run.step("coverage")["status"] == "skipped"
    assert run.step("coverage")["summary"] == "the unit tests fail (see opa test)"

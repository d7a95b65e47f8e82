"""A hitlgate.yaml that does not load at the base ref fails the diff step, not the whole run.

It used to abort with config_error (exit 2) and throw the head's report away.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policyci.conftest import clone, git, run_check

pytestmark = pytest.mark.opa


def test_broken_base_config_is_a_failing_diff_step(base_repo: Path, tmp_path: Path) -> None:
    project = clone(base_repo, tmp_path / "repo")
    config = project / "hitlgate.yaml"
    good = config.read_text(encoding="utf-8")
    config.write_text("backend: [unclosed\n", encoding="utf-8")
    git(project, "commit", "-q", "-am", "break the configuration")
    config.write_text(good, encoding="utf-8")
    run = run_check(project, "--base", "HEAD")
    assert run.exit_code == 1, run.stdout + run.stderr
    step = run.step("diff-base")
    assert step["status"] == "failed"
    assert "the base project's configuration does not load" in step["findings"][0]["message"]
    assert run.step("diff-complete")["status"] == "skipped"
    assert run.step("opa-test")["status"] == "passed"

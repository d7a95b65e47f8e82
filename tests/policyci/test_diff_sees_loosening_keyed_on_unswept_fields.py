"""A loosening keyed on a proposal field the sweep holds fixed (justification, parameters) is never silent.

The sweep varies target, action type and requester kind only. A pack that
auto-allows when the justification says "per CISO" was reported as "no
decision changed". Now the sweep also tries each literal the pack compares
such a field against, and a field read any other way (a regex, a
parameter) makes the diff incomplete: a failing check under --fail-on
loosening, a note under never.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policyci.conftest import Run, clone, edit, run_check

pytestmark = pytest.mark.opa

DENY = 'tier := "deny" if deny_row'


def _pr(base_repo: Path, tmp: Path, condition: str, *args: str) -> Run:
    project = clone(base_repo, tmp / "repo")
    edit(project / "policies" / "decision.rego", DENY,
         f'tier := "auto_allow" if {{\n\t{condition}\n\tnot deny_row\n}}\n\nelse := "deny" if deny_row')
    return run_check(project, "--base", "main", *args)


def test_justification_literal_loosening_is_caught(base_repo: Path, tmp_path: Path) -> None:
    run = _pr(base_repo, tmp_path, 'contains(input.justification, "per CISO")')
    assert run.exit_code == 1, run.stdout
    changes = run.doc["diff"]["changes"]
    assert any(c["direction"] == "loosening" and c["head_tier"] == "auto_allow" for c in changes), changes
    assert run.step("diff-complete")["status"] == "passed"
    assert "justification=per CISO" in run.stdout


def test_justification_regex_makes_the_diff_incomplete(base_repo: Path, tmp_path: Path) -> None:
    run = _pr(base_repo, tmp_path, 'regex.match("CISO", input.justification)')
    assert run.exit_code == 1, run.stdout
    step = run.step("diff-complete")
    assert step["status"] == "failed"
    assert "the policy reads input.justification, which the sweep does not vary" in step["findings"][0]["message"]
    assert "decision diff incomplete" in run.outputs["markdown"]
    assert 'type="diff-complete"' in run.outputs["junit"]


def test_parameter_keyed_loosening_fails_unless_fail_on_never(base_repo: Path, tmp_path: Path) -> None:
    run = _pr(base_repo, tmp_path, "input.action.parameters.force == true", "--fail-on", "never")
    assert run.exit_code == 0, run.stdout
    step = run.step("diff-complete")
    assert step["status"] == "note"
    assert "input.action.parameters" in step["findings"][0]["message"]

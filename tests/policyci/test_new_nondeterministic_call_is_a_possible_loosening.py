"""A time bomb (a rule keyed on the clock) fails the check, though no decision changes today.

``maintenance_window if time.now_ns() > <2030>`` and ``not
maintenance_window`` on the single-approval row turn approvals into
auto-allow from 2030: the diff, made today, saw no change, and the only
trace was a note. Now a nondeterministic builtin the head calls and the
base did not fails the check "the head pack calls no nondeterministic
builtin the base does not" under ``--fail-on loosening`` and ``any-change``
(a note under ``never``), naming the builtin and the module; one the base
already called stays a note.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policyci.conftest import clone, edit, git, run_check

pytestmark = pytest.mark.opa

SINGLE_ROW = 'else := "single_approval" if count(single_conditions) > 0'
TIME_BOMB = ('else := "single_approval" if {\n\tcount(single_conditions) > 0\n\tnot maintenance_window\n}')
WINDOW = "\nmaintenance_window if time.now_ns() > 1893456000000000000\n"


def _time_bomb(project: Path) -> None:
    rego = project / "policies" / "decision.rego"
    edit(rego, SINGLE_ROW, TIME_BOMB)
    rego.write_text(rego.read_text(encoding="utf-8") + WINDOW, encoding="utf-8")


@pytest.mark.parametrize("fail_on", ["loosening", "any-change", "never"])
def test_time_bomb_fails_unless_fail_on_never(base_repo: Path, tmp_path: Path, fail_on: str) -> None:
    project = clone(base_repo, tmp_path / "repo")
    _time_bomb(project)
    run = run_check(project, "--base", "main", "--fail-on", fail_on)
    # No decision changes before 2030: only the new call can fail the run.
    assert run.doc["diff"]["changes"] == [], run.stdout
    step = run.step("diff-deterministic")
    (finding,) = step["findings"]
    assert finding["message"].startswith("policies/decision.rego now calls time.now_ns, which the base pack does "
                                         "not call")
    assert finding["file"] == "policies/decision.rego" and finding["line"] is not None
    if fail_on == "never":
        assert (run.exit_code, step["status"]) == (0, "note"), run.stdout
    else:
        assert (run.exit_code, step["status"]) == (1, "failed"), run.stdout
        assert "the head pack calls no nondeterministic builtin the base does not" in run.outputs["junit"]
        assert "now calls time.now_ns" in run.outputs["markdown"]


def test_a_call_the_base_already_made_stays_a_note(base_repo: Path, tmp_path: Path) -> None:
    project = clone(base_repo, tmp_path / "repo")
    rego = project / "policies" / "decision.rego"
    rego.write_text(rego.read_text(encoding="utf-8") + "\nchecked_at := time.now_ns()\n", encoding="utf-8")
    git(project.parent, "commit", "-q", "-am", "base calls time.now_ns")
    _time_bomb(project)
    run = run_check(project, "--base", "HEAD")
    assert run.exit_code == 0, run.stdout
    assert run.step("diff-deterministic")["status"] == "passed"
    assert any("the head pack calls time.now_ns" in note for note in run.doc["diff"]["notes"])

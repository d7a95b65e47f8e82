"""``policy check`` refuses what it cannot do with exit 2 and a stable code, before running any check."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from tests.policyci.conftest import clone, working_directory

#: Real OPA (opa check, fmt, test and a server) runs in every check.
pytestmark = pytest.mark.opa


@pytest.fixture(scope="module")
def project(base_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clone(base_repo, tmp_path_factory.mktemp("usage") / "repo")


def _check(project: Path, *args: str) -> tuple[int, dict[str, object]]:
    with working_directory(project):
        result = CliRunner().invoke(cli, ["--json", "--config", "hitlgate.yaml", "policy", "check", *args])
    return result.exit_code, json.loads(result.stdout)["error"]


def test_a_ref_that_does_not_exist_exits_2(project: Path) -> None:
    code, error = _check(project, "--base", "no-such-branch")
    assert (code, error["code"]) == (2, "ref_not_found")
    assert "--base no-such-branch: no such commit" in str(error["message"])


def test_an_option_disguised_as_a_ref_is_refused(project: Path) -> None:
    code, error = _check(project, "--base=--output=/tmp/x")
    assert (code, error["code"]) == (2, "ref_not_found")


def test_base_outside_a_git_repository_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "proj")])
    assert result.exit_code == 0
    code, error = _check(tmp_path / "proj", "--base", "main")
    assert (code, error["code"]) == (2, "not_a_git_repository")
    # A project fresh from `hitlgate init` is not in git yet: the message says how to get there.
    assert "commit the project to git first, e.g. `git init -b main && git add -A" in str(error["message"])


def test_a_replay_line_that_is_not_json_exits_2(project: Path) -> None:
    replay = project.parent / "bad-replay.jsonl"
    replay.write_text('{"action": {"type": "notify_owner", "target": "x", "parameters": {}}}\nnot json\n')
    code, error = _check(project, "--base", "main", "--replay", str(replay))
    assert (code, error["code"]) == (2, "invalid_replay")
    assert "bad-replay.jsonl:2" in str(error["message"])


def test_a_missing_replay_is_not_found_and_a_directory_invalid_replay(project: Path) -> None:
    """Click's own existence check answered first, with bad_parameter, which the README does not list for it."""
    code, error = _check(project, "--base", "main", "--replay", str(project / "nope.jsonl"))
    assert (code, error["code"]) == (2, "not_found")
    assert "nope.jsonl: cannot read it" in str(error["message"])
    code, error = _check(project, "--base", "main", "--replay", str(project))
    assert (code, error["code"]) == (2, "invalid_replay")
    assert "not a regular file" in str(error["message"])


def test_replay_without_base_exits_2(project: Path) -> None:
    replay = project / "proposal.json"
    code, error = _check(project, "--replay", str(replay))
    assert (code, error["code"]) == (2, "replay_needs_base")


def test_bad_output_spec_is_a_usage_error(project: Path) -> None:
    with working_directory(project):
        result = CliRunner().invoke(cli, ["policy", "check", "--output", "pdf=x.pdf"])
    assert result.exit_code == 2
    assert "expected FORMAT=FILE" in result.stderr


def test_missing_opa_exits_2(project: Path, tmp_path: Path) -> None:
    with working_directory(project):
        result = CliRunner().invoke(
            cli, ["--json", "--config", "hitlgate.yaml", "policy", "check"],
            env={"HITLGATE_OPA": None, "PATH": str(tmp_path), "HITLGATE_CACHE": str(tmp_path / "cache")},
        )
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["code"] == "opa_missing"


def test_output_to_a_directory_is_refused_before_the_checks(project: Path, tmp_path: Path) -> None:
    """``--json policy check --output junit=/tmp`` printed the report and then an error: two JSON documents."""
    code, error = _check(project, "--output", f"junit={tmp_path}")
    assert code == 2
    assert error["code"] == "unsafe_path"


def test_a_relative_ref_is_not_advertised_as_fetchable(project: Path) -> None:
    """``--base HEAD~1`` in a one-commit repository suggested ``git fetch origin HEAD~1``."""
    code, error = _check(project, "--base", "HEAD~1")
    assert code == 2
    assert error["code"] == "ref_not_found"
    assert "git fetch" not in str(error["message"])
    code, error = _check(project, "--base", "origin/feature-x")
    assert "git fetch origin feature-x" in str(error["message"])


def test_a_missing_branch_names_the_branches_there_or_the_remote_to_fetch_from(
    base_repo: Path, tmp_path: Path
) -> None:
    """``git init`` names its first branch master on many machines; ``--base main`` then said to fetch from origin."""
    project = clone(base_repo, tmp_path / "repo")
    top = project.parent
    subprocess.run(["git", "remote", "remove", "origin"], cwd=top, check=True)
    branch = subprocess.run(["git", "branch", "--show-current"], cwd=top, capture_output=True, text=True,
                            check=True).stdout.strip()
    code, error = _check(project, "--base", "no-such-branch")
    assert (code, error["code"]) == (2, "ref_not_found")
    assert str(error["message"]).endswith(f"(this repository has no remote; its branches: {branch})")

    subprocess.run(["git", "remote", "add", "upstream", "https://example.invalid/x.git"], cwd=top, check=True)
    code, error = _check(project, "--base", "upstream/feature-x")
    assert str(error["message"]).endswith("(fetch it first, e.g. git fetch upstream feature-x)")


def test_json_wins_over_format_text(project: Path) -> None:
    """``--json --format text`` was accepted silently; --json wins (and the help says so)."""
    with working_directory(project):
        result = CliRunner().invoke(cli, ["--json", "--config", "hitlgate.yaml", "policy", "check", "--format",
                                          "text"])
    assert json.loads(result.stdout)["checks_ok"] is True
    help_text = CliRunner().invoke(cli, ["policy", "check", "--help"]).output
    assert "--json means --format json and wins over any --format" in " ".join(help_text.split())


def test_policy_help_lists_check_and_fmt() -> None:
    help_text = CliRunner().invoke(cli, ["policy", "--help"]).output
    assert "hitlgate policy check --base origin/main" in help_text
    assert "hitlgate policy fmt --write" in help_text
    assert "Validate and package the policy pack." not in help_text

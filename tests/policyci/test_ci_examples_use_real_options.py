"""The CI examples (the GitHub workflow, the pre-commit hooks) and the README run commands and options that exist.

A renamed option would leave a copied workflow failing in someone's CI;
these tests parse each example and ask the real CLI about every command
and option it uses.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine.decide._policyreport import FORMATS

REPO = Path(__file__).resolve().parents[2]


def _options(path: list[str]) -> set[str]:
    help_text = CliRunner().invoke(cli, [*path, "--help"]).stdout
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", help_text))


def _check_command(line: str) -> None:
    words = shlex.split(line.replace("\\\n", " "))
    start = words.index("hitlgate")
    path = [w for w in words[start + 1 : start + 3] if not w.startswith("-")]
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, f"hitlgate {' '.join(path)}: {result.output}"
    used = {w.split("=", 1)[0] for w in words[start + 1 :] if w.startswith("--")}
    assert used <= _options(path), f"{line!r} uses unknown options {used - _options(path)}"


def test_workflow_runs_policy_check_with_existing_options() -> None:
    workflow = yaml.safe_load((REPO / "examples" / "ci" / "github-workflow.yml").read_text())
    steps = workflow["jobs"]["policy-check"]["steps"]
    scripts = [s["run"] for s in steps if "run" in s]
    (check,) = [s for s in scripts if "hitlgate policy check --" in s]
    command = check[check.index("hitlgate policy check --"):].split("\n  echo")[0].split("\necho")[0]
    _check_command(command)
    assert "--base" in command and "--format github" in command and "markdown=policy-check.md" in command
    # OPA comes from its official setup action at the version hitlgate pins (or is built by hitlgate).
    from hitlgate.engine.decide._opabin import OPA_VERSION

    setup = [s for s in steps if str(s.get("uses", "")).startswith("open-policy-agent/setup-opa@")]
    assert any("hitlgate opa install" in s for s in scripts) or (
        setup and str(setup[0]["with"]["version"]) == OPA_VERSION.lstrip("v"))
    # hitlgate is installed from a source the project chooses (it is not on PyPI), never a bare name.
    assert not any("pip install hitlgate" in s for s in scripts)
    # The base ref reaches the script through the environment, never spliced into it.
    assert "${{" not in check


def test_pre_commit_hooks_run_existing_commands() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert {h["id"] for h in hooks} == {"hitlgate-policy-fmt", "hitlgate-policy-check"}
    for hook in hooks:
        assert hook["language"] == "python"
        _check_command(hook["entry"])


def test_readme_policy_ci_section_names_every_format_and_code() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Policy CI"): text.index("## Approving, warrants")]
    for fmt in FORMATS:
        assert fmt in section, fmt
    for code in ("ref_not_found", "not_a_git_repository", "opa_missing", "replay_needs_base"):
        assert f"`{code}`" in section or code in section, code
    for command in ("hitlgate policy check", "hitlgate policy fmt", "--base", "--replay", "--fail-on", "--output",
                    "GITHUB_STEP_SUMMARY", "examples/ci/github-workflow.yml", ".pre-commit-hooks.yaml"):
        assert command in section, command

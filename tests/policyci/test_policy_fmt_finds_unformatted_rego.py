"""``hitlgate policy fmt`` delegates to ``opa fmt``: --check lists what it would change, --write changes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from tests.policyci.conftest import working_directory

#: Real OPA (opa check, fmt, test and a server) runs in every check.
pytestmark = pytest.mark.opa

UNFORMATTED = 'package hitlgate\nextra_factor_note:="x" if { input.action.type=="notify_owner" }\n'


def _project(tmp_path: Path) -> Path:
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "proj")])
    assert result.exit_code == 0
    return tmp_path / "proj"


def _fmt(project: Path, *args: str) -> tuple[int, dict[str, object]]:
    with working_directory(project):
        result = CliRunner().invoke(cli, ["--config", "hitlgate.yaml", "--json", "policy", "fmt", *args])
    return result.exit_code, json.loads(result.stdout)


def test_unformatted_module_fails_check_then_write_fixes_it(tmp_path: Path) -> None:
    project = _project(tmp_path)
    assert _fmt(project) == (0, {"ok": True, "mode": "check", "files": []})
    (project / "policies" / "extra.rego").write_text(UNFORMATTED)
    assert _fmt(project, "--check") == (1, {"ok": False, "mode": "check", "files": ["policies/extra.rego"]})
    code, diff = _fmt(project, "--diff", "policies/extra.rego")
    assert code == 1 and "extra_factor_note" in str(diff["diff"])
    assert _fmt(project, "--write") == (0, {"ok": True, "mode": "write", "files": ["policies/extra.rego"]})
    assert _fmt(project) == (0, {"ok": True, "mode": "check", "files": []})
    assert (project / "policies" / "extra.rego").read_text() != UNFORMATTED


def test_unparsable_module_is_an_input_error(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "policies" / "broken.rego").write_text("package hitlgate\n\nx if {\n")
    code, doc = _fmt(project)
    assert code == 2
    assert doc["error"]["code"] == "rego_parse_error"  # type: ignore[index]


def test_write_refuses_a_symlink_out_of_the_project(tmp_path: Path) -> None:
    project = _project(tmp_path)
    outside = tmp_path / "outside.rego"
    outside.write_text(UNFORMATTED)
    (project / "policies" / "link.rego").symlink_to(outside)
    code, doc = _fmt(project, "--write")
    assert code == 2
    assert doc["error"]["code"] == "unsafe_path"  # type: ignore[index]
    assert outside.read_text() == UNFORMATTED


def test_a_file_named_like_a_flag_is_a_file(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "--diff.rego").write_text(UNFORMATTED)
    code, doc = _fmt(project, "--check", "--", "--diff.rego")
    assert (code, doc["files"]) == (1, ["--diff.rego"])


def test_diff_is_a_unified_diff(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "policies" / "extra.rego").write_text(UNFORMATTED)
    code, doc = _fmt(project, "--diff")
    assert code == 1
    diff = str(doc["diff"])
    assert diff.startswith("--- a/policies/extra.rego\n+++ b/policies/extra.rego\n@@ ")
    assert '+extra_factor_note := "x" if input.action.type == "notify_owner"\n' in diff


def test_write_and_diff_together_is_a_usage_error(tmp_path: Path) -> None:
    project = _project(tmp_path)
    with working_directory(project):
        result = CliRunner().invoke(cli, ["--config", "hitlgate.yaml", "policy", "fmt", "--write", "--diff"])
    assert result.exit_code == 2
    assert "exclude each other" in result.output


def test_an_opa_that_is_not_opa_is_tool_not_runnable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path)
    monkeypatch.setenv("HITLGATE_OPA", "/bin/false")
    code, doc = _fmt(project)
    assert (code, doc["error"]["code"]) == (2, "tool_not_runnable")  # type: ignore[index]


def test_missing_opa_names_fmt_and_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path)
    monkeypatch.setenv("HITLGATE_OPA", str(tmp_path / "no-opa"))
    code, doc = _fmt(project)
    assert (code, doc["error"]["code"]) == (2, "opa_missing")  # type: ignore[index]
    message = str(doc["error"]["message"])  # type: ignore[index]
    assert message.startswith("hitlgate policy fmt needs the opa binary: $HITLGATE_OPA points at ")


def test_parse_error_shows_opas_file_and_line(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "policies" / "broken.rego").write_text("package hitlgate\n\nx if {\n")
    code, doc = _fmt(project)
    assert code == 2
    assert "policies/broken.rego:4: rego_parse_error" in str(doc["error"]["message"])  # type: ignore[index]

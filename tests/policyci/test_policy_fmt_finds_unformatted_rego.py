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

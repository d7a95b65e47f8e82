"""A non-UTF-8 byte in a .rego file is reported as ``bad_encoding`` with its file and line.

It used to end ``policy check`` with "internal UnicodeDecodeError" (exit 1):
OPA's output echoing the byte was decoded strictly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from tests.policyci.conftest import clone, run_check, working_directory

pytestmark = pytest.mark.opa


def test_non_utf8_rego(base_repo: Path, tmp_path: Path) -> None:
    project = clone(base_repo, tmp_path / "repo")
    module = project / "policies" / "decision.rego"
    lines = module.read_bytes().count(b"\n")
    with module.open("ab") as fh:
        fh.write(b"# caf\xe9\n")
    run = run_check(project)
    assert run.exit_code == 1, run.stdout + run.stderr
    finding = run.step("regopy")["findings"][0]
    assert finding["message"].startswith("bad_encoding: not UTF-8 (byte 0xe9)")
    assert (finding["file"], finding["line"]) == ("policies/decision.rego", lines + 1)
    with working_directory(project):
        result = CliRunner().invoke(cli, ["--json", "--config", "hitlgate.yaml", "policy", "fmt"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["code"] == "bad_encoding"

"""``hitlgate inventory put``: an oversized or hostile record is refused before it is parsed or stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_project import Project, make_project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    p = make_project(tmp_path)
    # A small record limit, so the test needs no 64 MiB argument.
    with p.config.open("a") as fh:
        fh.write("limits: {inventory_file_bytes: 1024, max_depth: 8}\n")
    return p


def _error(project: Project, args: list[str]) -> dict[str, object]:
    result = project.invoke(["--json", *args])
    assert result.exit_code == 2, result.output
    error: dict[str, object] = json.loads(result.stdout)["error"]
    return error


def test_oversized_record_on_the_command_line_is_refused(project: Project) -> None:
    record = json.dumps({"name": "x" * 2000})
    error = _error(project, ["inventory", "put", "teams", "t-big", "--record", record])
    assert error["code"] == "input_too_large"
    assert "limits.inventory_file_bytes" in str(error["message"])
    assert "x" * 100 not in str(error["message"])


def test_oversized_record_file_is_refused(project: Project) -> None:
    path = project.fresh("big.json")
    path.write_text(json.dumps({"name": "x" * 2000}))
    error = _error(project, ["inventory", "put", "teams", "t-big", "--file", str(path)])
    assert error["code"] == "input_too_large"


def test_too_deep_record_is_refused(project: Project) -> None:
    deep = "[" * 20 + "]" * 20
    error = _error(project, ["inventory", "put", "teams", "t-deep", "--record", '{"name": ' + deep + "}"])
    assert error["code"] == "too_deep"
    assert error["problems"] == ["--record: nested deeper than 8 levels (limits.max_depth)"]


def test_nothing_refused_is_stored(project: Project) -> None:
    _error(project, ["inventory", "put", "teams", "t-big", "--record", json.dumps({"name": "x" * 2000})])
    result = project.invoke(["--json", "inventory", "status"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == 0

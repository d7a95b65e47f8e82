"""Untrusted text in a report (a scenario note) cannot inject terminal escapes, workflow commands or bad XML.

A note "x ESC]8;;http://evil ESC\\ CR LF ::error::injected" made --format text
print a line starting with ``::error::`` (a GitHub workflow command in a CI
log), passed ESC through text, github and Markdown, and \\x0c or \\x01 made
the JUnit XML invalid.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # noqa: S405 - parses our own report.
from pathlib import Path

import pytest
import yaml

from tests.policyci.conftest import clone, run_check

pytestmark = pytest.mark.opa

NOTE = "x \x1b]8;;http://evil\x1b\\ \r\n::error::injected \x0c\x01\x85"


def test_scenario_note_cannot_inject(base_repo: Path, tmp_path: Path) -> None:
    project = clone(base_repo, tmp_path / "repo")
    case = {"note": NOTE, "proposal": {
        "action": {"type": "rotate_api_key", "target": "dev-analytics-key", "parameters": {}},
        "requester": {"id": "soc-agent-7", "kind": "agent"}, "justification": "j"},
        "want_tier": "deny", "want_factors": []}
    (project / "policies" / "scenarios" / "evil.yaml").write_text(yaml.safe_dump({"cases": [case]}),
                                                                    encoding="utf-8")
    run = run_check(project)
    assert run.exit_code == 1
    assert "injected" in run.stdout
    for fmt in ("text", "markdown", "junit", "github", "sarif"):
        out = run.stdout if fmt == "text" else run.outputs[fmt]
        assert not any(c in out for c in "\x1b\x0c\x01\x85\r"), fmt
    assert not any(line.lstrip().startswith("::") for line in run.stdout.splitlines())
    assert all(line.startswith("::") or line.startswith("hitlgate policy check:")
               for line in run.outputs["github"].splitlines())
    ET.fromstring(run.outputs["junit"].split("\n", 1)[1])  # noqa: S314 - our own output.
    json.loads(run.outputs["sarif"])

"""``audit verify`` on a chain whose newest events no signed checkpoint covers hints at ``audit checkpoint``.

The chain still verifies (exit 0); the hint is for people (text mode,
stderr) and disappears once a checkpoint covers the head.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_project import make_project


def test_fresh_chain_hints_at_audit_checkpoint_until_one_covers_the_head(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    project.granted()  # Issuing its warrant signs (and anchors) a checkpoint of that event.
    covered = json.loads(project.invoke(["--json", "audit", "verify"]).stdout)["head_seq"]
    project.pending()
    head = json.loads(project.invoke(["--json", "audit", "verify"]).stdout)["head_seq"]
    before = project.invoke(["audit", "verify"])
    assert before.exit_code == 0, before.output
    assert before.stderr == (
        f"hint: no signed checkpoint covers events #{covered + 1}-#{head} yet; run `hitlgate audit checkpoint` "
        "to sign the current head (a signed checkpoint is what makes rewriting those events detectable)\n"
    )
    as_json = project.invoke(["--json", "audit", "verify"])
    assert as_json.exit_code == 0 and "audit checkpoint" not in as_json.output
    assert project.invoke(["audit", "checkpoint"]).exit_code == 0
    after = project.invoke(["audit", "verify"])
    assert after.exit_code == 0 and after.stderr == ""


def test_an_exports_uncovered_tail_hints_to_export_again_after_the_checkpoint(tmp_path: Path) -> None:
    # A checkpoint signed after the export is not in the file: only a new export carries it.
    project = make_project(tmp_path)
    project.granted()
    project.pending()
    export = tmp_path / "audit.jsonl"
    assert project.invoke(["audit", "export", "--out", str(export)]).exit_code == 0
    verified = project.invoke(["audit", "verify", "--file", str(export)])
    assert verified.exit_code == 0, verified.output
    assert "hint: no signed checkpoint in this export covers events" in verified.stderr
    assert "run `hitlgate audit checkpoint` to sign the current head and export again (" in verified.stderr

"""Fault/threat: an audit export that is empty, or cut to its first lines, passes ``audit verify --file``.

Before the fix an empty file gave "OK: 0 events" (exit 0), and an export
cut short before its last signed checkpoint's coverage ended was OK without
a word. Now an empty export does not verify (exit 3, code empty_export),
the report says how many events at the end no signed checkpoint covers, and
``--require-checkpoint`` makes that a failure (exit 3). Real SQLite, real
keys, the CLI through click's CliRunner.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.workflow import test_cli_workflow as _cli
from tests.workflow._helpers import proposal

env = _cli.env  # The CLI tests' project fixture (real keys, a SQLite file).
run, write = _cli.run, _cli.write


def _export(env: dict[str, str], tmp_path: Path) -> list[str]:
    doc = proposal("suspend_service_account", "svc-ci-runner")
    for _ in range(3):
        run(env, "propose", write(tmp_path, "p.json", doc), code=4)
    run(env, "audit", "checkpoint")
    run(env, "propose", write(tmp_path, "p.json", doc), code=4)
    out = tmp_path / "audit.jsonl"
    run(env, "audit", "export", "--out", str(out))
    return out.read_text().splitlines(keepends=True)


def test_empty_export_does_not_verify(env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("")
    result = run(env, "audit", "verify", "--file", str(empty), code=3)
    assert "holds no audit event: it is empty or not an export" in result.output


def test_export_cut_to_its_first_lines_is_reported(env: dict[str, str], tmp_path: Path) -> None:
    lines = _export(env, tmp_path)
    events = [line for line in lines if '"record": "event"' in line]
    whole = json.loads(run(env, "audit", "verify", "--file", str(tmp_path / "audit.jsonl"), "--json").output)
    assert whole["uncovered_events"] == 2 and whole["covered_seq"] == len(events) - 2
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(events[:3]))
    text = run(env, "audit", "verify", "--file", str(cut)).output
    assert "WARNING: last 3 event(s) (after seq 0) not covered by a signed checkpoint" in text
    strict = run(env, "audit", "verify", "--file", str(cut), "--require-checkpoint", code=3).output
    assert "last 3 event(s) (after seq 0) not covered by a signed checkpoint" in strict

"""The README's offline audit check runs as written, right after the block before it.

A new user running the README in order met three failures here: the
second ``audit export --out audit.jsonl`` was refused (the block above had
written that file), ``anchor-copy.jsonl`` was never made, and the export
ended with events no checkpoint covered. This runs the ``sh`` block that
follows "check offline:" with bash in a project whose ``audit.jsonl``
already exists; it must verify with the anchor copy and warn about nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.cli_project import make_project

README = Path(__file__).resolve().parents[2] / "README.md"


def offline_check() -> str:
    section = README.read_text(encoding="utf-8").split("and check offline:", 1)[1]
    found = re.search(r"^```sh\n(.*?)^```", section, re.S | re.M)
    assert found, "no sh block after 'check offline:'"
    return found.group(1)


def test_readme_offline_audit_check_runs_as_written(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    project.granted()
    project.pending()
    # The README's previous block ends with `hitlgate audit export --out audit.jsonl`.
    assert project.invoke(["audit", "export", "--out", str(project.root / "audit.jsonl")]).exit_code == 0
    bindir = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin"
    env = {**os.environ, "HITLGATE_CONFIG": str(project.config),
           "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}" if bindir.is_dir() else os.environ["PATH"]}
    result = subprocess.run(["bash", "-c", "set -euo pipefail\n" + offline_check()], cwd=project.root, env=env,
                            capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("audit export OK: "), result.stdout
    # The copy of the anchor was read (at least one checkpoint from it), and the checkpoint signed
    # first covers the whole export: no "not covered by a signed checkpoint" warning.
    anchored = re.search(r", (\d+) from --anchor files,", last)
    assert anchored is not None and int(anchored.group(1)) >= 1, last
    assert "WARNING" not in last, last
    assert "hint:" not in result.stderr, result.stderr

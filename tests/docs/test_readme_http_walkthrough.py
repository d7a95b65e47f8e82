"""The README's HTTP walk-through runs as written: every step takes its ids from the previous answers.

A new user found ``$REQ`` never set and a literal ``<jti from verify>``. This
runs the README's ``sh`` block of "The HTTP service" with bash against a real
project (real approver keys), changing only the port, the approver's key
path and the working directory; it must end with the outcome recorded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests._require import missing
from tests.cli_project import make_project
from tests.service._server import free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> str:
    section = README.read_text(encoding="utf-8").split("## The HTTP service", 1)[1]
    found = re.search(r"^```sh\n(.*?)^```", section, re.S | re.M)
    assert found, "no sh block in the HTTP service section"
    return found.group(1)


def test_no_placeholder_is_left_to_fill_in() -> None:
    script = walkthrough()
    assert "<" not in script.replace("< ", "").replace("<<", ""), "a <placeholder> in the walk-through"
    for var in ("REQ", "DIGEST", "TOKEN", "JTI"):
        assert re.search(rf"^(export )?{var}=", script, re.M), f"${var} is used but never set"


def test_readme_http_walkthrough_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("jq") is None or shutil.which("curl") is None:
        missing("jq and curl", "apt-get install jq curl (scripts/test installs them)")
    project = make_project(tmp_path)
    port = free_port()
    script = walkthrough().replace("8080", str(port)).replace("~/.hitlgate/carol.pem", str(project.keys["carol"]))
    bindir = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin"
    env = {**os.environ, "HITLGATE_CONFIG": str(project.config),
           "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}" if bindir.is_dir() else os.environ["PATH"]}
    script = "set -euo pipefail\ntrap 'kill %1 2>/dev/null || true' EXIT\n" + script + "\necho\necho DONE\n"
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=240, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "DONE" and '"status":"executed"' in lines[-2], result.stdout[-2000:]
    assert "granted" in result.stdout

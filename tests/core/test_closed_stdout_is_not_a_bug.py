"""A reader that closes stdout early (``hitlgate requests | head -1``) is not a bug in hitlgate.

The command must stop quietly with exit 141 (128 + SIGPIPE, what a shell
reports for ``cat`` cut short the same way): no ``error: unexpected
BrokenPipeError`` line, no traceback, no exit 1 or 120. The pipe is real: the
test closes its read end before the child writes anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import EXIT_CLOSED_STDOUT, cli
from tests._pdeathsig import die_with_parent
from tests.conftest import make_proposal

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    proposal = tmp_path / "p.json"
    proposal.write_text(json.dumps(make_proposal("rotate_api_key", "dev-analytics-key")))
    for _ in range(3):
        result = CliRunner().invoke(cli, ["--config", str(proj / "hitlgate.yaml"), "propose", str(proposal)])
        assert result.exit_code == 0, result.output
    config = str(proj / "hitlgate.yaml")
    result = CliRunner().invoke(cli, ["--config", config, "apikey", "create", "a", "--role", "agent"])
    assert result.exit_code == 0, result.output
    return proj


def _into_closed_pipe(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = "from hitlgate.cli import main; main()"
    proc = subprocess.Popen(  # noqa: S603 - this interpreter, fixed argv.
        [sys.executable, "-c", code, "--config", str(project / "hitlgate.yaml"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=die_with_parent(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    # Closed before the interpreter has even imported hitlgate: the first write meets a closed pipe.
    proc.stdout.close()
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)


@pytest.mark.parametrize("args", [["requests"], ["apikey", "list"], ["--json", "requests"]])
def test_closed_stdout_ends_quietly_with_141(project: Path, args: list[str]) -> None:
    done = _into_closed_pipe(project, *args)
    assert "BrokenPipe" not in done.stderr
    assert "error:" not in done.stderr
    assert "Traceback" not in done.stderr
    assert done.returncode == EXIT_CLOSED_STDOUT == 141, done.stderr

"""Fault: an operator presses Ctrl-C while a command waits, and a script reads its output as JSON.

Before the fix the process printed click's ``Aborted!`` (or a traceback)
and exited 1, so a caller parsing ``--json`` stdout got nothing to parse and
an exit code that means an operational error. It now prints the error
document with code ``interrupted`` and exits 130 (128 + SIGINT), and the
request it was waiting on is left exactly as it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from click.testing import CliRunner

from hitlgate.cli import cli
from tests._cli_process import HITLGATE, cli_env


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _until_waiting(proc: subprocess.Popen[str]) -> None:
    """Return once the CLI has its state database open, i.e. is past start-up and in the wait.

    A fixed sleep was not enough on a loaded machine: a SIGINT that arrives
    while Python is still importing is a plain KeyboardInterrupt, before the
    CLI's own handling exists. Linux's /proc shows the open files.
    """
    deadline = time.monotonic() + 60
    fds = Path(f"/proc/{proc.pid}/fd")
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            targets = [os.readlink(fd) for fd in fds.iterdir()]
        except OSError:
            targets = []
        if any(t.endswith(".db") for t in targets):
            time.sleep(0.5)  # Into the polling loop that follows the first read.
            return
        time.sleep(0.1)


def _interrupted_wait(proj: Path, request_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed argv.
        [*HITLGATE, "--config", str(proj / "hitlgate.yaml"), *extra, "wait", request_id, "--timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
        # As from a terminal: a test run started in the background of a shell (nohup ... &) ignores
        # SIGINT, and a child inherits that, so Python would never see the Ctrl-C this test sends.
        preexec_fn=_default_sigint)  # noqa: PLW1509 - only resets one signal before exec.
    try:
        _until_waiting(proc)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_while_waiting_is_an_interrupted_error_and_leaves_the_request(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    config = ["--config", str(proj / "hitlgate.yaml")]
    proposed = CliRunner().invoke(cli, [*config, "--json", "propose", str(proj / "proposal.json")])
    assert proposed.exit_code == 4, proposed.output
    request_id = json.loads(proposed.stdout)["id"]

    as_json = _interrupted_wait(proj, request_id, "--json")
    assert as_json.returncode == 130, as_json
    doc = json.loads(as_json.stdout)
    assert doc["error"]["code"] == "interrupted" and doc["error"]["exit_code"] == 130
    assert "Traceback" not in as_json.stderr and "Aborted" not in as_json.stderr

    plain = _interrupted_wait(proj, request_id)
    assert plain.returncode == 130, plain
    assert "error: interrupted (Ctrl-C) before the command finished" in plain.stderr
    assert "Traceback" not in plain.stderr

    shown = CliRunner().invoke(cli, [*config, "--json", "show", request_id])
    assert json.loads(shown.stdout)["status"] == "pending"

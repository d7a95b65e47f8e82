"""``--replay`` reads only a regular file, a bounded line at a time.

``--replay /dev/zero`` grew memory without bound (the line limit was checked
after the whole, endless, line was read) and ``--replay`` on a FIFO hung
waiting for a writer. Both now exit 2 ``invalid_replay`` at once.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hitlgate.cli import cli
from tests.policyci.conftest import clone, working_directory


def _check(project: Path, replay: str) -> Result:
    with working_directory(project):
        return CliRunner().invoke(cli, ["--json", "--config", "hitlgate.yaml", "policy", "check", "--base", "main",
                                        "--replay", replay])


def test_replay_dev_zero_is_refused(base_repo: Path, tmp_path: Path) -> None:
    result = _check(clone(base_repo, tmp_path / "repo"), "/dev/zero")
    assert result.exit_code == 2, result.output
    assert '"invalid_replay"' in result.output


def test_replay_fifo_is_refused_without_hanging(base_repo: Path, tmp_path: Path) -> None:
    project = clone(base_repo, tmp_path / "repo")
    fifo = tmp_path / "replay.fifo"
    os.mkfifo(fifo)
    results: list[Result] = []
    worker = threading.Thread(target=lambda: results.append(_check(project, str(fifo))), daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():
        # Release the blocked reader so the test run does not hang, then fail.
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("--replay on a FIFO blocked")
    assert results[0].exit_code == 2, results[0].output
    assert '"invalid_replay"' in results[0].output

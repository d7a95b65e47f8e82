"""A FIFO, socket or device where the pack expects a file fails closed, naming it, and never hangs.

Opening a FIFO nobody writes to blocks forever: a FIFO dropped into
``policies/data/`` used to hang every decision (and every decision thread
of ``serve``), one in ``policies/scenarios/`` hung ``policy test``, and one
named ``*.rego`` was silently left out of the pack. Each is now refused by
name. A FIFO named as an argument is still read, whenever its writer comes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _hitlgate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HITLGATE_HOME": str(cwd / "home")}
    return subprocess.run([sys.executable, "-m", "hitlgate", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=90, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert _hitlgate(tmp_path, "init", "proj").returncode == 0
    return tmp_path / "proj"


@pytest.mark.parametrize("where", ["policies/data/extra.yaml", "policies/zz.rego"])
def test_a_fifo_in_the_pack_is_a_broken_pack_naming_it(project: Path, where: str) -> None:
    os.mkfifo(project / where)
    done = _hitlgate(project, "--json", "decide", "proposal.json")
    assert done.returncode == 5, done.stderr
    decision = json.loads(done.stdout)
    assert decision["tier"] == "deny" and decision["fail_closed"]["code"] == "policy_broken"
    assert f"{project / where}: is not a regular file" in json.dumps(decision)


def test_a_fifo_among_the_scenarios_is_refused_naming_it(project: Path) -> None:
    os.mkfifo(project / "policies" / "scenarios" / "extra.yaml")
    done = _hitlgate(project, "--json", "policy", "test", "--no-rego-tests")
    assert done.returncode == 2, done.stdout + done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "invalid_scenario" and "extra.yaml: is not a regular file" in error["message"]


@pytest.mark.parametrize("delay", ["0", "1"])
def test_a_proposal_handed_over_through_a_fifo_waits_for_its_writer(project: Path, delay: str) -> None:
    # A FIFO named as an argument is another process handing the document over: read it as `cat` does,
    # whenever the writer comes (opened without blocking, it looked empty: "malformed JSON").
    fifo = project / "handover.json"
    os.mkfifo(fifo)
    proposal = (project / "proposal.json").read_bytes()
    # At once (the writer may open, write and close while the reader looks at the file) or a second later.
    writer = subprocess.Popen(["sh", "-c", f"sleep {delay}; cat {project / 'proposal.json'} > {fifo}"])
    try:
        done = _hitlgate(project, "--json", "decide", str(fifo))
    finally:
        writer.wait(timeout=30)
    assert done.returncode == 4, done.stdout + done.stderr
    assert json.loads(done.stdout)["tier"] == "dual_approval"
    assert proposal

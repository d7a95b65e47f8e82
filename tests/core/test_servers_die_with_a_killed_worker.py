"""A test worker killed with SIGKILL takes the servers it started with it (tests/_pdeathsig.py).

SIGKILL runs no fixture teardown, so an OPA or ``hitlgate serve`` process a
killed worker had started kept running. Here a stand-in worker starts a
long-lived child the way the fixtures start their servers, and is killed:
once with the child running (as ``hitlgate serve``, sent SIGTERM), once with
the child paused by SIGSTOP, as the OPA fault tests pause OPA (sent SIGKILL).
A stopped process keeps a SIGTERM pending, and whether the kernel then
continues it (an orphaned process group's stopped members get SIGHUP and
SIGCONT) depends on the process groups around it, so OPA gets SIGKILL;
this test shows each child dies, not which signal was needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")

WORKER = """
import signal, subprocess, sys
from tests._pdeathsig import die_with_parent
sig, pause = int(sys.argv[1]), sys.argv[2] == "paused"
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], preexec_fn=die_with_parent(sig))
if pause:
    child.send_signal(signal.SIGSTOP)
print(child.pid, flush=True)
sys.stdin.read()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent (now init) has not reaped it yet.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize(("sig", "state"), [(signal.SIGTERM, "running"), (signal.SIGKILL, "paused")])
def test_server_started_by_a_worker_dies_when_the_worker_is_sigkilled(sig: signal.Signals, state: str) -> None:
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(int(sig)), state], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        assert worker.stdout is not None
        child = int(worker.stdout.readline())
        assert _alive(child)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), f"the {state} server (pid {child}) outlived the SIGKILLed worker"
    finally:
        worker.kill()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)


PG_WORKER = """
import sys
from tests._pgcluster import pg_bindir, running_cluster
with running_cluster(pg_bindir()) as cluster:
    print(cluster.socket_dir, flush=True)
    sys.stdin.read()
"""


@pytest.mark.postgres
def test_a_postgresql_cluster_is_stopped_and_deleted_when_its_worker_is_sigkilled() -> None:
    # pg_ctl daemonises the server: no death signal reaches it, and SIGKILL runs no teardown.
    from tests._pgcluster import pg_bindir
    from tests._require import missing

    if pg_bindir() is None:
        missing("PostgreSQL", "run scripts/install-postgres")
    worker = subprocess.Popen([sys.executable, "-c", PG_WORKER], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    base = Path()
    try:
        assert worker.stdout is not None
        base = Path(worker.stdout.readline().strip())
        postmaster = int((base / "data" / "postmaster.pid").read_text().split()[0])
        assert _alive(postmaster)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        deadline = time.monotonic() + 30
        while (_alive(postmaster) or base.exists()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(postmaster), f"the cluster's server (pid {postmaster}) outlived the SIGKILLed worker"
        assert not base.exists(), f"the cluster's files ({base}) outlived the SIGKILLed worker"
    finally:
        worker.kill()

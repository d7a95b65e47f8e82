"""Fixtures for the OPA suite: the real OPA binary and real OPA servers.

OPA is installed by ``scripts/install-opa`` (``go install``, cached). If it
cannot be installed the suite *fails*, locally and in CI: a skipped
differential suite would let the two engines drift apart unnoticed.

Every test in this directory carries the ``opa`` marker (added at
collection below; a module-level ``pytestmark`` in a conftest applies to
nothing), so ``pytest -m opa`` selects exactly the OPA suite.

Servers listen on a free loopback port and serve a bundle file built from
a pack with :func:`hitlgate.engine.decide._bundle.write_bundle`. A server started
with ``watch=True`` reloads the bundle when the file is replaced, which is
how the generated-inventory tests swap packs without restarting OPA.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hitlgate.engine.decide._bundle import write_bundle
from hitlgate.engine.decide.policy import PolicyPack
from tests._pdeathsig import die_with_parent

REPO = Path(__file__).resolve().parents[2]
INSTALL_OPA = REPO / "scripts" / "install-opa"

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``opa`` (pytest -m opa / -m "not opa")."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.opa)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OpaServer:
    """One real ``opa run --server`` process serving a bundle file."""

    def __init__(self, opa: Path, bundle: Path, log_dir: Path, *, watch: bool = False) -> None:
        self.opa = opa
        self.bundle = bundle
        self.watch = watch
        self.log_path = log_dir / f"opa-{bundle.stem}-{time.monotonic_ns()}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._session = requests.Session()

    def start(self, timeout: float = 20.0) -> OpaServer:
        """Start OPA (again, on the same port) and wait until it has activated the bundle.

        Healthy means *this* process answers: it is started with a label of its
        own, which ``/v1/config`` must report. Another test worker's OPA can
        take the port between :func:`free_port` and this start (or between a
        kill and a restart); its health check answered for ours, and a test
        that froze "its" OPA got answers from the other one.
        """
        instance = uuid.uuid4().hex
        cmd = [str(self.opa), "run", "--server", "--addr", f"127.0.0.1:{self.port}"]
        cmd += ["--log-level", "error", "--set", f"labels.hitlgate_instance={instance}"]
        if self.watch:
            cmd.append("--watch")
        cmd += ["--bundle", str(self.bundle)]
        log = self.log_path.open("ab")
        # SIGKILL, not SIGTERM: the fault tests pause OPA (SIGSTOP), and a stopped process keeps a SIGTERM pending.
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent(signal.SIGKILL))
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"opa exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                if (self._session.get(f"{self.url}/health?bundles", timeout=0.5).status_code == 200
                        and self._instance() == instance):
                    return self
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"opa did not become healthy in {timeout}s:\n{self.log_path.read_text()}")

    def _instance(self) -> object:
        """The ``hitlgate_instance`` label of the OPA answering on this port."""
        labels = (self._session.get(f"{self.url}/v1/config", timeout=0.5).json().get("result") or {}).get("labels")
        return (labels or {}).get("hitlgate_instance")

    def served_revision(self) -> str | None:
        """The revision OPA reports for its bundle right now."""
        body = self._session.get(f"{self.url}/v1/data/system/bundles", timeout=2).json()
        bundles = body.get("result") or {}
        revisions = {b["manifest"]["revision"] for b in bundles.values()}
        return revisions.pop() if len(revisions) == 1 else None

    def serve_pack(self, pack: PolicyPack, timeout: float = 10.0) -> None:
        """Replace the bundle file with ``pack`` and wait until OPA serves it (watch mode)."""
        assert self.watch, "serve_pack needs a server started with watch=True"
        write_bundle(pack, self.bundle)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # The bundle carries the modules only, so OPA reports the modules revision.
            if self.served_revision() == pack.modules_revision:
                return
            time.sleep(0.01)
        pytest.fail(f"opa did not load revision {pack.modules_revision} in {timeout}s")

    def pause(self) -> None:
        """Freeze OPA (SIGSTOP): connections are accepted by the kernel, never answered.

        Returns once every thread of OPA is stopped: the signal takes effect
        asynchronously, and on a loaded host a request sent right after the
        kill was once answered (the fault test then saw a decision, not its
        timeout).
        """
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        tasks = Path(f"/proc/{self.proc.pid}/task")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = []
            for tid in os.listdir(tasks):
                try:
                    # The state is the first field after the parenthesised command name.
                    states.append((tasks / tid / "stat").read_text().rsplit(")", 1)[1].split()[0])
                except (FileNotFoundError, ProcessLookupError):
                    continue  # A thread that ended meanwhile.
            if states and all(state in ("T", "t") for state in states):
                return
            time.sleep(0.001)
        pytest.fail(f"opa (pid {self.proc.pid}) did not stop within 10 s of SIGSTOP")

    def resume(self) -> None:
        """Thaw OPA (SIGCONT)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        """Kill OPA at once (SIGKILL), as a crash would."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop OPA if it runs (thawing it first, so SIGTERM is delivered)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._session.close()


@pytest.fixture
def own_opa(opa_bin: Path, bundled_pack: PolicyPack, tmp_path: Path) -> Iterator[OpaServer]:
    """A private OPA server (watch mode) for a test that kills, freezes or re-bundles it."""
    # The bundle sits in a directory of its own: OPA's watcher reacts to
    # every file event in the directory of the watched path.
    (tmp_path / "served").mkdir()
    bundle = write_bundle(bundled_pack, tmp_path / "served" / "hitlgate.tar.gz")
    server = OpaServer(opa_bin, bundle, tmp_path, watch=True).start()
    yield server
    server.stop()

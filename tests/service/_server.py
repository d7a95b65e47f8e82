"""Real ``hitlgate serve`` processes for the service tests (and the two-replica test and the bench)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests._pdeathsig import die_with_parent

_MAIN = "from hitlgate.cli import main; main()"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(config: Path, *, log: Path, workers: int = 1, startup_seconds: float = 60.0,
                   pids: list[int] | None = None, port: int | None = None) -> Iterator[str]:
    """Start ``hitlgate --config CONFIG serve`` on a free port; yield its base URL; stop it with SIGTERM.

    ``pids``, when given, receives the server's process id. ``port`` chooses the port (a
    configuration naming the server's own URL, like ``server.public_url``, needs it first).
    """
    port = port if port is not None else free_port()
    args = [sys.executable, "-c", _MAIN, "--config", str(config), "serve", "--port", str(port)]
    if workers > 1:
        args += ["--workers", str(workers)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ},
                                preexec_fn=die_with_parent())
    url = f"http://127.0.0.1:{port}"
    if pids is not None:
        pids.append(proc.pid)
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hitlgate serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"hitlgate serve did not start in {startup_seconds} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker_processes(pid: int) -> list[int]:
    """The uvicorn worker processes of ``hitlgate serve --workers N`` (children that run multiprocessing's spawn)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # The process ended while we looked.
        if int(fields[1]) == pid and b"multiprocessing.spawn" in cmdline:
            found.append(int(stat.parent.name))
    return sorted(found)

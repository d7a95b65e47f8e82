"""``hitlgate serve`` faults a new user meets first: a busy port, a missing server extra; and its start line.

Real ``hitlgate serve`` processes: a port another socket holds gives exit 1
with ``cannot listen on HOST:PORT: address in use`` (JSON with code
``address_in_use`` under ``--json``), never uvicorn's raw line and exit 3;
without the server extra (its modules made unimportable in the child) the
error says what to install, with code ``missing_extra``; a server that
starts prints one ``listening on`` line naming the port it bound.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests._pdeathsig import die_with_parent
from tests.cli_project import make_project

_MAIN = "from hitlgate.cli import main; main()"


def _serve(config: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", prelude + _MAIN, "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ}, check=False)


def test_busy_port_is_a_clean_error_with_exit_1(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        text = _serve(project.config, "serve", "--port", str(port))
        as_json = _serve(project.config, "--json", "serve", "--port", str(port))
        workers = _serve(project.config, "serve", "--port", str(port), "--workers", "2")
    assert text.returncode == 1, text.stderr
    assert f"error: cannot listen on 127.0.0.1:{port}: address in use" in text.stderr
    assert "errno" not in text.stderr.lower() and "Traceback" not in text.stderr
    assert as_json.returncode == 1, as_json.stderr
    err = json.loads(as_json.stdout)["error"]
    assert err["code"] == "address_in_use" and f"127.0.0.1:{port}" in err["message"]
    assert workers.returncode == 1 and "address in use" in workers.stderr, workers.stderr


def test_missing_server_extra_says_what_to_install(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    hide = "import sys; sys.modules.update(dict.fromkeys(['uvicorn', 'fastapi'], None)); "
    text = _serve(project.config, "serve", "--port", "0", prelude=hide)
    assert text.returncode == 1, text.stderr
    assert "a bug in hitlgate" not in text.stderr and "pip install 'hitlgate[server]'" in text.stderr
    assert "pip install -e '.[server]'" in text.stderr
    as_json = _serve(project.config, "--json", "serve", "--port", "0", prelude=hide)
    assert json.loads(as_json.stdout)["error"]["code"] == "missing_extra"


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM, then the output; a server that has not ended 30 s later is killed, and the test fails."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def test_serve_prints_one_listening_line_with_the_bound_port(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _MAIN, "--config", str(project.config), "--json", "serve",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=die_with_parent())
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no listening line in 60 s"
        line = proc.stdout.readline()
        doc = json.loads(line)
        assert doc["host"] == "127.0.0.1" and doc["workers"] == 1 and doc["port"] > 0
        assert doc["listening"] == f"http://127.0.0.1:{doc['port']}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", doc["port"]), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the announced port never accepted a connection"
                time.sleep(0.1)
    finally:
        _, err = _stop(proc)
    # uvicorn shuts down gracefully, then ends by the signal it caught (documented in serve --help).
    assert proc.returncode == -signal.SIGTERM, err
    assert "Traceback" not in err


def test_start_line_names_the_console_at_public_url(tmp_path: Path) -> None:
    # Passkeys work only at server.public_url (a host name), not at the bound 127.0.0.1: the start
    # line says where approvers open the console, so a new user does not open the wrong origin.
    project = make_project(tmp_path)
    project.config.write_text(project.config.read_text() + "\nserver:\n  public_url: http://localhost:8080\n")
    proc = subprocess.Popen([sys.executable, "-c", _MAIN, "--config", str(project.config), "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=die_with_parent())
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 60)
        assert ready, "no listening line in 60 s"
        line = proc.stderr.readline()
    finally:
        _stop(proc)
    assert line.startswith("listening on http://127.0.0.1:"), line
    assert line.endswith(" (1 worker); approvers' console: http://localhost:8080/ui\n"), line

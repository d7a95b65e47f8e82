"""Threat: a ``hitlgate tick`` is killed (SIGKILL, an OOM kill, a node lost) while it waits on a receiver.

A real process, a real receiver that accepted the connection, a real kill:
the dead process still holds the tick lease and the row's delivery lease,
so a tick right after it does nothing; once both have lapsed, another
replica's tick sends the notification, once, to the (repaired) receiver.
Nothing is lost, and the killed attempt, never recorded, is not counted:
delivery is at least once, and a receiver that did get the first attempt
drops the repeat by its ``webhook-id``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from standardwebhooks import Webhook

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import load_config
from hitlgate.engine.tick import run_tick_under_lease
from tests.cli_project import make_project
from tests.notify.conftest import Receiver, webhook_settings

_MAIN = "from hitlgate.cli import main; main()"


def test_tick_killed_mid_delivery_is_sent_once_after_its_leases_lapse(
    tmp_path: Path, receiver: Receiver, webhook_secret: str
) -> None:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(4)
    accepted = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        conn, _ = hole.accept()
        held.append(conn)  # Kept open and never answered.
        accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    project = make_project(tmp_path)
    config = yaml.safe_load(project.config.read_text())
    config["notifications"] = webhook_settings(f"http://127.0.0.1:{hole.getsockname()[1]}/hook")
    config["notifications"]["channels"][0]["settings"]["timeout_seconds"] = 30
    project.config.write_text(yaml.safe_dump(config))
    rid = project.pending()

    proc = subprocess.Popen([sys.executable, "-c", _MAIN, "--config", str(project.config), "tick"],
                            env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert accepted.wait(60), "the tick never reached the receiver"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        hole.close()
        for conn in held:
            conn.close()

    # The dead process's lease is still in force: a tick now leaves everything as it is.
    now = json.loads(project.invoke(["--json", "tick"]).stdout)
    assert now["ran"] is False
    # The receiver is repaired; another replica ticks after both leases lapsed (the row's: 3 x 30 s + 30 s).
    config["notifications"] = webhook_settings(receiver.url)
    project.config.write_text(yaml.safe_dump(config))
    engine = Engine.from_config(load_config(project.config),
                                clock=lambda: datetime.now(UTC) + timedelta(seconds=150))
    try:
        report = run_tick_under_lease(engine, "replica-2")
    finally:
        engine.close()
    assert report.ran and report.notifications is not None and report.notifications["delivered"] == 1
    [got] = receiver.received
    doc = Webhook(webhook_secret).verify(got.body, got.headers)
    assert (doc["type"], doc["data"]["request_id"]) == ("request.pending", rid)
    listed = json.loads(project.invoke(["notifications", "list", "--json"]).stdout)
    assert [(r["status"], r["attempts"]) for r in listed] == [("delivered", 1)]

"""A ``request.pending`` notice made after the grant still names the approval window, not the warrant's deadline.

A tick that runs late (cron every few minutes, a notifications section added
after requests were made) turns the ``decided`` event into its notice after
the request was already granted. Before the fix the notice read "waits for
1 approval(s) until" the request's current ``expires_at``, which after the
grant is the warrant's deadline (minutes, not the hour-long window).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from hitlgate.engine._time import format_time
from tests.cli_project import make_project
from tests.notify.conftest import Receiver, webhook_settings


def test_late_pending_notice_names_when_the_approval_window_closes(
    tmp_path: Path, receiver: Receiver, webhook_secret: str
) -> None:
    project = make_project(tmp_path)
    config = yaml.safe_load(project.config.read_text())
    config["notifications"] = webhook_settings(receiver.url)
    project.config.write_text(yaml.safe_dump(config))
    rid = project.pending()
    assert project.invoke(project.approve_args("approve", rid)).exit_code == 0
    shown = json.loads(project.invoke(["show", rid, "--json"]).stdout)
    assert shown["status"] == "granted"
    created = datetime.fromisoformat(shown["created_at"].replace("Z", "+00:00"))
    window = format_time(created + timedelta(seconds=shown["decision"]["ttl_seconds"]))
    assert window != shown["expires_at"]  # Granted: expires_at is now the warrant's deadline.

    assert project.invoke(["tick", "--json"]).exit_code == 0
    rows = json.loads(project.invoke(["notifications", "list", "--json"]).stdout)
    [pending] = [r for r in rows if r["event"] == "request.pending"]
    assert pending["summary"].endswith(f": waits for 1 approval(s) until {window}")

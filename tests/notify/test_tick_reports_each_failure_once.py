"""``hitlgate tick`` from cron: each failed delivery is reported once, not twice.

The tick's own report lists every failure under its summary line; before the
fix the dispatcher's log warning for the same failure (what ``serve`` logs)
was printed on stderr too, so a cron mail held each failure twice. ``-v``
still shows the log lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.cli_project import make_project
from tests.notify.conftest import webhook_settings

_MAIN = "from hitlgate.cli import main; main()"


def _tick(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A real process: the CLI sets up logging only when nobody (here: pytest) has already.
    return subprocess.run([sys.executable, "-c", _MAIN, "--config", str(config), *args, "tick"],
                          capture_output=True, text=True, timeout=120, env={**os.environ}, check=False)


def test_a_failed_delivery_is_reported_once(tmp_path: Path, closed_port: str, webhook_secret: str) -> None:
    project = make_project(tmp_path)
    config = yaml.safe_load(project.config.read_text())
    config["notifications"] = webhook_settings(closed_port, max_attempts=3)
    project.config.write_text(yaml.safe_dump(config))
    project.pending()
    first = _tick(project.config)
    assert first.returncode == 0, first.stderr
    assert "1 enqueued, 0 delivered, 1 to retry" in first.stdout
    failures = [line for line in first.stderr.splitlines() if "ConnectionRefusedError" in line]
    assert len(failures) == 1 and failures[0].startswith("  - 1 hook: "), first.stderr
    assert "WARNING" not in first.stderr
    assert project.invoke(["notifications", "retry", "1"]).exit_code == 0
    verbose = _tick(project.config, "-v")
    assert "WARNING hitlgate.engine.notify.dispatcher: notification 1 (request.pending) to hook failed" \
        in verbose.stderr

"""``hitlgate serve`` settles the cyclic collector before it answers (hitlgate.service.collector).

A real ``serve`` process, with uvicorn's ``Server.run`` replaced (in the
child only) by one that reports the collector's state at the moment the
server would start answering: the youngest generation's threshold is
``GEN0_THRESHOLD``, what the engine built at start is frozen, and the
older generations keep CPython's thresholds. The multi-worker factory
(``app_from_environment``) is checked the same way.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

from hitlgate.service.collector import GEN0_THRESHOLD
from tests.cli_project import make_project

_REPORT = (
    "import gc, json, sys, uvicorn\n"
    "def run(self, sockets=None):\n"
    "    self.started = True\n"
    "    print(json.dumps({'threshold': gc.get_threshold(), 'frozen': gc.get_freeze_count()}), file=sys.stderr)\n"
    "uvicorn.Server.run = run\n"
)


def _child(code: str, config: Path) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "HITLGATE_CONFIG": str(config)})
    assert proc.returncode == 0, proc.stderr
    report: dict[str, object] = json.loads(proc.stderr.strip().splitlines()[-1])
    return report


def test_serve_freezes_the_engine_and_raises_the_youngest_threshold(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    report = _child(_REPORT + "from hitlgate.cli import main\n"
                    f"sys.argv = ['hitlgate', '--config', {str(project.config)!r}, 'serve', '--port', '0']\n"
                    "main()\n", project.config)
    _, older, oldest = gc.get_threshold()
    assert report["threshold"] == [GEN0_THRESHOLD, older, oldest]
    assert isinstance(report["frozen"], int) and report["frozen"] > 10_000, report


def test_each_worker_app_is_settled_too(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    report = _child("import gc, json, sys\n"
                    "from hitlgate.service.app import app_from_environment\n"
                    "app_from_environment()\n"
                    "print(json.dumps({'threshold': gc.get_threshold(), 'frozen': gc.get_freeze_count()}),"
                    " file=sys.stderr)\n", project.config)
    assert report["threshold"][0] == GEN0_THRESHOLD  # type: ignore[index]
    assert isinstance(report["frozen"], int) and report["frozen"] > 10_000, report

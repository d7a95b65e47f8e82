"""Two ``hitlgate serve`` replicas on one PostgreSQL, both ticking every second: each reminder once.

A request proposed 40 minutes ago (through an engine whose clock is set
back) is past its reminder (10 min) and escalation (30 min) thresholds but
not yet inside its expiry warning (15 min before the 60 min window closes).
Both replicas start and tick for several seconds; the audit chain then holds
exactly one reminder and one escalation for it, addressed as configured,
and no warning, and it verifies.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from hitlgate.engine._time import utcnow
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import Config
from hitlgate.engine.ledger import lease
from hitlgate.engine.tick import LEASE_NAME
from tests._pgcluster import PgCluster
from tests.cli_project import make_project
from tests.service._server import running_server

pytestmark = pytest.mark.postgres

REMINDERS = """reminders:
  tick_seconds: 1
  lease_seconds: 3
  single_approval: {remind_after_minutes: 10, escalate_after_minutes: 30, warn_before_expiry_minutes: 15}
"""


def test_two_serve_replicas_send_each_reminder_once(pg_cluster: PgCluster, tmp_path: Path) -> None:  # noqa: F811
    project = make_project(tmp_path)
    db_url = pg_cluster.new_database()
    text = project.config.read_text()
    project.config.write_text(text.replace("state: sqlite:///state/hitlgate.db", f"state: {db_url}") + REMINDERS)
    inventory = project.root / "policies" / "data" / "inventory.yaml"
    inv = inventory.read_text()
    old = "  team-platform: {name: Platform engineering}\n"
    assert old in inv
    inventory.write_text(inv.replace(old, "  team-platform: {name: Platform engineering, escalation: [grace]}\n"))

    forty_minutes_ago = utcnow() - timedelta(minutes=40)
    with Engine(Config.from_file(project.config), clock=lambda: forty_minutes_ago) as engine:
        req = engine.propose({"action": {"type": "suspend_service_account", "target": "svc-ci-runner",
                                         "parameters": {}},
                              "requester": {"id": "soc-agent-7", "kind": "agent"}, "justification": "test"})
    assert (req.status, req.tier) == ("pending", "single_approval")

    with running_server(project.config, log=tmp_path / "a.log") as _a, \
            running_server(project.config, log=tmp_path / "b.log") as _b:
        deadline = time.monotonic() + 60
        with Engine(Config.from_file(project.config)) as engine:
            while time.monotonic() < deadline:
                kinds = [e.kind for e in engine.audit_events(req.id)]
                if "approval_escalated" in kinds and "approval_reminder_sent" in kinds:
                    break
                time.sleep(0.5)
            held = lease.current(engine.store, LEASE_NAME)
            assert held is not None
            # Both replicas go on ticking for a while: still one of each.
            time.sleep(6)

    with Engine(Config.from_file(project.config)) as engine:
        nudges = [(e.kind, e.payload["addressees"]) for e in engine.audit_events(req.id)
                  if e.kind.startswith("approval_")]
        # Both replicas released the lease when they stopped.
        assert lease.current(engine.store, LEASE_NAME) is None
    assert sorted(nudges) == [("approval_escalated", ["grace"]),
                              ("approval_reminder_sent", ["alice", "carol", "erin", "grace"])]
    verified = project.invoke(["--json", "audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["events"] > 0

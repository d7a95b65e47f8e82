"""Bad input: a ``reminders:`` block or an inventory ``escalation`` list that cannot work is refused, by name.

A typo in the reminders config must not silently turn reminders off; an
escalation list naming someone who is not a registered approver must not
load (the escalation would go to nobody). ``hitlgate tick`` runs the
reminders from the CLI under the lease and reports them (``--json``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hitlgate.engine.config import Config, RemindersConfig, TierReminders
from hitlgate.engine.decide.inventory import load_inventory
from hitlgate.engine.ledger import lease
from hitlgate.engine.ledger.store import Store
from hitlgate.engine.tick import LEASE_NAME
from hitlgate.errors import ConfigError, ValidationError
from tests.cli_project import make_project


def _config(tmp_path: Path, reminders: str) -> Path:
    path = tmp_path / "hitlgate.yaml"
    path.write_text(f"reminders:\n{reminders}")
    return path


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("  single_approval: {remind_after: 10}\n", "reminders.single_approval: Additional properties"),
        ("  auto_allow: {remind_after_minutes: 10}\n", "reminders: Additional properties are not allowed"),
        ("  single_approval: {remind_after_minutes: 0}\n", "less than the minimum of 1"),
        ("  single_approval: {remind_after_minutes: '10'}\n", "is not of type 'integer'"),
        ("  single_approval: {}\n", r"has 0 properties, fewer than allowed \(at least 1\)"),
        ("  tick_seconds: 0\n", "less than the minimum of 1"),
        ("  single_approval: {remind_after_minutes: 30, escalate_after_minutes: 30}\n",
         r"reminders.single_approval.escalate_after_minutes \(30\) must be later than remind_after_minutes \(30\)"),
        ("  tick_seconds: 20\n  lease_seconds: 30\n",
         r"reminders.lease_seconds \(30\) must be at least twice reminders.tick_seconds \(20\)"),
    ],
)
def test_bad_reminders_config_is_refused_by_name(tmp_path: Path, block: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Config.from_file(_config(tmp_path, block))


def test_reminders_config_is_read(tmp_path: Path) -> None:
    config = Config.from_file(_config(tmp_path, (
        "  tick_seconds: 2\n  lease_seconds: 10\n"
        "  dual_approval: {remind_after_minutes: 15, escalate_after_minutes: 45, warn_before_expiry_minutes: 20}\n"
    )))
    assert config.reminders == RemindersConfig(tick_seconds=2, lease_seconds=10, tiers={
        "dual_approval": TierReminders(remind_after_minutes=15, escalate_after_minutes=45,
                                       warn_before_expiry_minutes=20),
    })
    assert Config().reminders == RemindersConfig()


def _inventory(tmp_path: Path, escalation: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "teams:\n"
        f"  team-a: {{escalation: {escalation}}}\n"
        "approvers:\n"
        "  ann: {roles: [security], teams: [team-a], "
        "public_key: 'ed25519:c1bpoYKeFU0Tt4ZOh16T2S5gTr_zwlnqpCqx7mhizMM'}\n"
    )
    return path


def test_escalation_list_naming_an_unknown_approver_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"teams.team-a.escalation\[1\]: unknown approver 'zed'"):
        load_inventory([_inventory(tmp_path, "[ann, zed]")])


@pytest.mark.parametrize(("escalation", "problem"), [("[ann, ann]", "has non-unique elements"),
                                                     ("ann", "is not of type 'array'")])
def test_malformed_escalation_list_is_refused(tmp_path: Path, escalation: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        load_inventory([_inventory(tmp_path, escalation)])


def test_escalation_list_of_known_approvers_loads(tmp_path: Path) -> None:
    inv = load_inventory([_inventory(tmp_path, "[ann]")])
    assert inv.document["teams"]["team-a"]["escalation"] == ["ann"]


def test_tick_command_reports_and_yields_to_a_lease_holder(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    first = project.invoke(["--json", "tick"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["ran"] is True
    assert {"expired", "reminders", "escalations", "expiry_warnings", "notifications"} <= report.keys()
    # The lease was released after the tick: a serve replica now holds it, and tick yields.
    text = project.config.read_text()
    state_line = next(line for line in text.splitlines() if line.startswith("state:"))
    url = state_line.split(":", 1)[1].strip()
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = f"sqlite:///{project.config.parent / url[len('sqlite:///'):]}"
    store = Store.open(url)
    try:
        assert lease.current(store, LEASE_NAME) is None
        assert lease.acquire(store, LEASE_NAME, "serve-replica", ttl=timedelta(seconds=600), now=datetime.now(UTC))
        second = project.invoke(["--json", "tick"])
        assert second.exit_code == 0, second.output
        assert json.loads(second.stdout)["ran"] is False
        assert json.loads(second.stdout)["holder"] == "serve-replica"
        assert lease.current(store, LEASE_NAME).holder == "serve-replica"
        human = project.invoke(["tick"])
        assert ("a running `hitlgate serve` (or another tick) holds the tick lease (serve-replica) and does this "
                "work itself; nothing done") in human.stdout
    finally:
        store.close()

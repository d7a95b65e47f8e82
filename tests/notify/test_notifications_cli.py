"""``hitlgate tick``, ``hitlgate notifications list|retry`` and ``doctor``'s dead letters, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli_project import make_project
from tests.notify.conftest import SECRET_ENV, Receiver, webhook_settings


def test_tick_list_retry_and_doctor(tmp_path: Path, receiver: Receiver, closed_port: str,
                                    webhook_secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path)
    config = yaml.safe_load(project.config.read_text())
    config["notifications"] = webhook_settings(closed_port, max_attempts=1)
    project.config.write_text(yaml.safe_dump(config))
    rid = project.pending()

    tick = project.invoke(["tick", "--json"])
    assert tick.exit_code == 0, tick.output
    report = json.loads(tick.stdout)["notifications"]
    assert (report["enqueued"], report["delivered"], report["dead"]) == (1, 0, 1)

    listed = project.invoke(["notifications", "list", "--status", "dead", "--json"])
    [row] = json.loads(listed.stdout)
    assert (row["event"], row["request_id"], row["channel"], row["attempts"]) == ("request.pending", rid, "hook", 1)
    assert "ConnectionRefusedError" in row["last_error"]

    shown = json.loads(project.invoke(["notifications", "show", str(row["id"]), "--json"]).stdout)
    assert [(d["attempt"], d["ok"]) for d in shown["deliveries"]] == [(1, False)]
    assert "FAILED" in project.invoke(["notifications", "show", str(row["id"])]).stdout

    doctor = project.invoke(["doctor", "--json"])
    doc = json.loads(doctor.stdout)
    assert doc["notifications"]["dead"]["count"] == 1
    assert doc["notifications"]["dead"]["latest"]["id"] == row["id"]
    text = project.invoke(["doctor"]).stdout
    assert "notifications:  1 dead letter(s)" in text
    assert f"hitlgate notifications retry {row['id']}" in text

    # The receiver is fixed: point the channel at it, retry, and the next tick delivers.
    config["notifications"] = webhook_settings(receiver.url)
    project.config.write_text(yaml.safe_dump(config))
    retried = project.invoke(["notifications", "retry", str(row["id"])])
    assert retried.exit_code == 0 and "is due again" in retried.stdout
    assert json.loads(project.invoke(["tick", "--json"]).stdout)["notifications"]["delivered"] == 1
    assert [json.loads(r.body)["data"]["request_id"] for r in receiver.received] == [rid]
    # The log numbers its entries in order; the retry's fresh budget does not make a second "#1".
    log = project.invoke(["notifications", "show", str(row["id"])]).stdout.splitlines()
    assert [line.split()[0] for line in log if line.startswith("  #")] == ["#1", "#2"]
    assert " FAILED (" in log[-2] and " ok (after a retry) (" in log[-1]
    again = project.invoke(["--json", "notifications", "retry", str(row["id"])])
    assert again.exit_code == 2 and json.loads(again.stdout)["error"]["code"] == "already_delivered"
    human = project.invoke(["notifications", "list"]).stdout
    assert "delivered" in human and rid in human


def test_missing_secret_fails_the_delivery_without_echoing_anything(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    project = make_project(tmp_path)
    config = yaml.safe_load(project.config.read_text())
    config["notifications"] = webhook_settings(receiver.url, max_attempts=3)
    project.config.write_text(yaml.safe_dump(config))
    project.pending()
    tick = project.invoke(["tick", "--json"])
    assert tick.exit_code == 0
    [error] = json.loads(tick.stdout)["notifications"]["errors"]
    assert f"the environment variable {SECRET_ENV} is not set" in error
    assert receiver.received == []


@pytest.mark.parametrize("command", ["show", "retry"])
def test_notification_id_beyond_the_column_is_a_usage_error(tmp_path: Path, command: str) -> None:
    # Before: an int the database cannot hold reached SQLite ("unexpected OverflowError", exit 1).
    project = make_project(tmp_path)
    result = project.invoke(["--json", "notifications", command, str(2**63)])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "bad_parameter" and "is not in the range 1<=x<=2147483647" in error["message"]


def test_route_naming_an_unknown_team_is_named_by_doctor(tmp_path: Path, receiver: Receiver) -> None:
    # A typo in a route's teams used to send nothing to anyone, silently.
    project = make_project(tmp_path)
    config = yaml.safe_load(project.config.read_text())
    config["notifications"] = webhook_settings(receiver.url, routes=[
        {"channels": ["hook"], "teams": ["team-payments", "team-paymnets"]}])
    project.config.write_text(yaml.safe_dump(config))
    doc = json.loads(project.invoke(["--json", "doctor"]).stdout)
    assert [w for w in doc["warnings"] if w.startswith("notifications.routes")] == [
        "notifications.routes[0].teams[1]: no team 'team-paymnets' in the inventory (no target is owned by it, "
        "so this route never matches)"]

"""``hitlgate serve`` runs the ticks itself: a proposal sent to the API reaches a webhook receiver within
seconds, once, with two worker processes ticking on one store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import yaml
from standardwebhooks import Webhook

from tests.cli_project import make_project
from tests.notify.conftest import Receiver, webhook_settings
from tests.service._server import running_server
from tests.service.conftest import create_key, proposal_doc

pytestmark = pytest.mark.slow

#: Start-up and a few ticks on a loaded machine.
TICK_WAIT_SECONDS = 30


def test_two_serve_workers_deliver_each_notification_once(
    tmp_path: Path, receiver: Receiver, webhook_secret: str
) -> None:
    project = make_project(tmp_path)
    config = yaml.safe_load(project.config.read_text())
    config["notifications"] = webhook_settings(receiver.url)
    # Ticks every second, so the test waits seconds, not the default's tens of seconds.
    config["reminders"] = {"tick_seconds": 1, "lease_seconds": 3}
    project.config.write_text(yaml.safe_dump(config))
    token = create_key(project, "soc-agent-7", "agent")
    with running_server(project.config, log=tmp_path / "serve.log", workers=2) as url:
        created = httpx.post(url + "/v1/requests", json=proposal_doc(), timeout=30,
                             headers={"Authorization": f"Bearer {token}"})
        assert created.status_code == 201, created.text
        rid = created.json()["id"]
        deadline = time.monotonic() + TICK_WAIT_SECONDS
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.2)
        # Both workers tick several times more (every second, the lease changing hands): still one delivery.
        time.sleep(4)
    [got] = receiver.received
    doc = Webhook(webhook_secret).verify(got.body, got.headers)
    assert (doc["type"], doc["data"]["request_id"]) == ("request.pending", rid)
    listed = json.loads(project.invoke(["notifications", "list", "--json"]).stdout)
    assert [(r["status"], r["attempts"]) for r in listed] == [("delivered", 1)]

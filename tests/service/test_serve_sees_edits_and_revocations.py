"""What a serving worker remembers between calls, and for how long.

``hitlgate serve`` looks for changed policy and inventory files at most
every ``server.file_check_seconds`` (not on every decision), and
``POST /v1/decisions`` may reuse a key's successful authentication for
``server.decide_auth_seconds``. Neither may let a stale answer outlive its
bound, and the reuse must never reach an endpoint that acts:

* an inventory edit (a target made protected) is decided on within the interval;
* a revoked key is refused at once by every endpoint that stores or grants
  anything, and by the decision endpoint once the reuse window has passed;
* a remembered success is bound to the whole token: the same key id with a
  wrong secret is refused while the right token is remembered.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.cli_project import make_project
from tests.service._server import running_server
from tests.service.conftest import Service, create_key, proposal_doc


def _tier(url: str, headers: dict[str, str], target: str) -> str:
    r = httpx.post(url + "/v1/decisions", json=proposal_doc(target=target), headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["tier"])


def test_inventory_edit_is_decided_on_within_the_check_interval(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    with project.config.open("a") as f:
        f.write("server:\n  file_check_seconds: 0.5\n")
    token = create_key(project, "agent-1", "agent")
    headers = {"Authorization": f"Bearer {token}"}
    inventory = project.root / "policies" / "data" / "inventory.yaml"
    with running_server(project.config, log=tmp_path / "serve.log") as url:
        before = _tier(url, headers, "svc-ci-runner")
        assert before != "deny"
        text = inventory.read_text()
        assert "protected:\n  - root-ca-key\n" in text
        inventory.write_text(text.replace("protected:\n  - root-ca-key\n",
                                          "protected:\n  - svc-ci-runner\n  - root-ca-key\n"))
        changed_at = time.monotonic()
        deadline = changed_at + 30
        while _tier(url, headers, "svc-ci-runner") != "deny":
            assert time.monotonic() < deadline, "the edit was never decided on"
            time.sleep(0.05)
        # Half a second of interval, plus a generous margin for a loaded machine's reload (a worker
        # that never looked again would fail above, at the deadline).
        assert time.monotonic() - changed_at < 15


def test_revoked_key_never_acts_and_stops_deciding_after_the_reuse_window(service: Service) -> None:
    token = create_key(service.project, "soon-revoked", "agent")
    headers = {"Authorization": f"Bearer {token}"}
    _tier(service.url, headers, "svc-ci-runner")  # Remembered for server.decide_auth_seconds (default 1 s).
    result = service.project.invoke(["apikey", "revoke", "soon-revoked", "--json"])
    assert result.exit_code == 0, result.output
    # Every endpoint that stores or grants anything looks the key up again: refused at once.
    for response in (
        httpx.post(service.url + "/v1/requests", json=proposal_doc(), headers=headers),
        httpx.get(service.url + "/v1/requests", headers=headers),
        httpx.post(service.url + "/v1/warrants/verify", json={"warrant": "a.b.c", "action": {}}, headers=headers),
    ):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthenticated"
    time.sleep(1.2)
    r = httpx.post(service.url + "/v1/decisions", json=proposal_doc(), headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthenticated"


def test_remembered_success_is_bound_to_the_whole_token(service: Service) -> None:
    token = create_key(service.project, "bound-agent", "agent")
    good = {"Authorization": f"Bearer {token}"}
    _tier(service.url, good, "svc-ci-runner")
    # Same key id, another secret: not the remembered token, so it is looked up, and refused.
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    r = httpx.post(service.url + "/v1/decisions", json=proposal_doc(), headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthenticated"
    assert _tier(service.url, good, "svc-ci-runner") != "deny"

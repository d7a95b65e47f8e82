"""Who may not do what: every refusal of the service's authentication and roles, with its documented code.

Against the real server, with keys made by the real CLI: a missing key, a
wrong key, a revoked key, a key whose role may not call the endpoint, an
agent reading another agent's request, and an agent approving its own
request through a signed vote (as signer, and as the key relaying someone
else's signature).
"""

from __future__ import annotations

from typing import Any

import httpx

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import Config
from hitlgate.engine.ledger.audit import AuditEvent
from tests.service.conftest import Service, create_key, proposal_doc


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    err: dict[str, Any] = response.json()["error"]
    assert set(err) >= {"code", "message", "problems"}
    return err


def _propose(service: Service, who: str) -> dict[str, Any]:
    r = httpx.post(service.url + "/v1/requests", json=proposal_doc(), headers=service.headers(who))
    assert r.status_code == 201, r.text
    doc: dict[str, Any] = r.json()
    return doc


def test_missing_key_is_unauthenticated(service: Service) -> None:
    err = _error(httpx.post(service.url + "/v1/requests", json=proposal_doc()), 401)
    assert err["code"] == "unauthenticated" and "Authorization: Bearer" in err["message"]


def test_wrong_key_is_unauthenticated(service: Service) -> None:
    token = service.tokens["soc-agent-7"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (forged, "hgk_0000000000000000_" + "A" * 43, "not-a-key"):
        err = _error(httpx.get(service.url + "/v1/requests", headers={"Authorization": f"Bearer {bad}"}), 401)
        assert err["code"] == "unauthenticated"


def test_revoked_key_is_unauthenticated_and_audited(service: Service) -> None:
    token = create_key(service.project, "short-lived", "agent")
    assert httpx.get(service.url + "/v1/requests", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    result = service.project.invoke(["apikey", "revoke", "short-lived", "--json"])
    assert result.exit_code == 0, result.output
    err = _error(httpx.get(service.url + "/v1/requests", headers={"Authorization": f"Bearer {token}"}), 401)
    assert err["code"] == "unauthenticated"
    listed = service.project.invoke(["apikey", "list", "--json"])
    assert token not in listed.stdout and "secret" not in listed.stdout
    with Engine(Config.from_file(service.project.config)) as engine:
        events: list[AuditEvent] = [e for e in engine.audit_events() if e.kind.startswith("api_key_")]
        assert {(e.kind, e.payload["name"]) for e in events} >= {
            ("api_key_created", "short-lived"), ("api_key_revoked", "short-lived")}
        engine.verify_audit()


def test_wrong_role_is_forbidden(service: Service) -> None:
    viewer = service.headers("viewer-1")
    err = _error(httpx.post(service.url + "/v1/requests", json=proposal_doc(), headers=viewer), 403)
    assert err["code"] == "forbidden"
    req = _propose(service, "soc-agent-7")
    # Only an executor consumes a warrant or reports an outcome; an agent may not, even for its own request.
    body = {"warrant": "a.b.c", "action": req["action"], "consume": True}
    verify = service.url + "/v1/warrants/verify"
    err = _error(httpx.post(verify, json=body, headers=service.headers("soc-agent-7")), 403)
    assert err["code"] == "forbidden"
    err = _error(httpx.post(service.url + "/v1/warrants/verify", json=body, headers=service.headers("admin-1")), 403)
    assert err["code"] == "forbidden"
    err = _error(httpx.get(service.url + f"/v1/requests/{req['id']}/warrant", headers=service.headers("exec-1")), 403)
    assert err["code"] == "forbidden"


def test_agent_cannot_read_another_agents_request(service: Service) -> None:
    req = _propose(service, "soc-agent-7")
    url = service.url + f"/v1/requests/{req['id']}"
    err = _error(httpx.get(url, headers=service.headers("other-agent")), 404)
    assert err["code"] == "not_found"
    # Exactly what an unknown id answers, so ids cannot be probed.
    unknown = _error(httpx.get(service.url + "/v1/requests/req-000000000000000000000000",
                               headers=service.headers("other-agent")), 404)
    assert unknown["message"] == "no request with id 'req-000000000000000000000000'"
    err = _error(httpx.get(url + "/warrant", headers=service.headers("other-agent")), 404)
    assert err["code"] == "not_found"
    listed = httpx.get(service.url + "/v1/requests", headers=service.headers("other-agent")).json()
    assert req["id"] not in {r["id"] for r in listed["requests"]}
    err = _error(httpx.get(service.url + "/v1/requests", params={"requester": "soc-agent-7"},
                           headers=service.headers("other-agent")), 403)
    assert err["code"] == "forbidden"
    assert httpx.get(url, headers=service.headers("viewer-1")).status_code == 200


def test_agent_approving_its_own_request_through_a_signed_vote(service: Service) -> None:
    # carol runs an agent (API key "carol") and is also an eligible approver.
    req = _propose(service, "carol")
    assert req["requester"] == "carol"
    # Her own signature, relayed by her own key: refused.
    err = _error(httpx.post(service.url + f"/v1/requests/{req['id']}/votes", json=service.signed(req, "carol"),
                            headers=service.headers("carol")), 403)
    assert err["code"] == "self_approval"
    # Her own signature relayed by another key: the engine refuses the signer as the requester.
    err = _error(httpx.post(service.url + f"/v1/requests/{req['id']}/votes", json=service.signed(req, "carol"),
                            headers=service.headers("viewer-1")), 403)
    assert err["code"] == "self_approval" and "cannot also vote" in err["message"]
    # A requester.id in the body naming someone else is refused: the requester is the key's principal.
    doc = {**proposal_doc(), "requester": {"id": "soc-agent-7", "kind": "agent"}}
    err = _error(httpx.post(service.url + "/v1/requests", json=doc, headers=service.headers("carol")), 403)
    assert err["code"] == "requester_mismatch"
    after = httpx.get(service.url + f"/v1/requests/{req['id']}", headers=service.headers("carol")).json()
    assert after["status"] == "pending" and after["votes"] == []


def test_bad_token_flood_writes_nothing_and_honest_writers_proceed(service: Service) -> None:
    # A refused API key costs one indexed read and never takes the store's
    # write (audit) lock: the chain does not grow, and a proposal sent in the
    # middle of the flood is stored.
    with Engine(Config.from_file(service.project.config)) as engine:
        before = len(engine.audit_events())
    bad = {"Authorization": "Bearer hgk_0123456789abcdef_" + "B" * 43}
    with httpx.Client(base_url=service.url) as c:
        codes = [c.post("/v1/requests", json=proposal_doc(), headers=bad).status_code for _ in range(40)]
        honest = c.post("/v1/requests", json=proposal_doc(), headers=service.headers("soc-agent-7"))
        codes += [c.post("/v1/warrants/verify", json={}, headers=bad).status_code for _ in range(40)]
    assert set(codes) == {401} and honest.status_code == 201
    with Engine(Config.from_file(service.project.config)) as engine:
        events = engine.audit_events()
    assert [e.kind for e in events[before:]] == ["proposed", "decided"]

"""A passkey enrolled through a one-time link logs in and approves; with an Ed25519 approval it meets a dual quorum."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from hitlgate.engine.approve._webauthn import Assertion
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.keys.keyring import b64url_encode
from tests.passkeys.conftest import ORIGIN, RP_ID, Console
from tests.workflow._helpers import proposal, vote


@pytest.mark.parametrize("alg", ["es256", "ed25519"])
def test_enrol_is_audited_and_bound_to_the_approver(engine: Engine, console: Console, alg: str) -> None:
    auth = console.enrol("alice", alg=alg)
    [record] = engine.passkeys.list("alice")
    assert (record.key.credential_id, record.key.approver, record.key.rp_id, record.key.origin) == (
        auth.id, "alice", RP_ID, ORIGIN)
    assert record.revoked_at is None
    kinds = [e.kind for e in engine.audit_events()]
    assert kinds[-3:] == ["passkey_enrolment_created", "passkey_enrolment_used", "passkey_enrolled"]
    enrolled = engine.audit_events()[-1].payload
    assert enrolled == record.key.to_dict()
    created = engine.audit_events()[-3].payload
    # Only the token's hash is kept, in the store and in the audit chain.
    assert created["token_hash"].startswith("sha256:") and created["approver"] == "alice"


def test_login_sets_a_strict_http_only_session(console: Console) -> None:
    auth = console.enrol("alice")
    resp = console.login(auth)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"approver": "alice"}
    cookie = resp.headers["set-cookie"]
    assert "hitlgate_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    # The console runs on http://127.0.0.1 here, where a Secure cookie would never be sent back.
    assert "Secure" not in cookie
    assert console.post("/ui/api/logout").status_code == 200
    console.client.cookies.clear()
    assert console.post("/ui/api/requests/x/vote/options", {"verdict": "approve"}).status_code == 401


def test_vote_options_challenge_is_the_statement_hash(engine: Engine, console: Console) -> None:
    auth = console.enrol("alice")
    console.login(auth)
    req = engine.propose(proposal())
    opts = console.options(req.id, "reject", reason="not during the freeze")
    assert opts["statement"] == {"request_id": req.id, "action_digest": req.action_digest, "verdict": "reject",
                                 "approver": "alice", "at": opts["statement"]["at"],
                                 "reason": "not during the freeze"}
    assert opts["canonical"] == json.dumps(opts["statement"], sort_keys=True, separators=(",", ":"))
    assert opts["publicKey"]["challenge"] == b64url_encode(hashlib.sha256(opts["canonical"].encode()).digest())
    assert opts["publicKey"]["userVerification"] == "required"
    assert [c["id"] for c in opts["publicKey"]["allowCredentials"]] == [auth.id]


def test_passkey_and_ed25519_approvals_meet_one_quorum(engine: Engine, browsers: Callable[[], Console]) -> None:
    alice = browsers()
    auth = alice.enrol("alice")
    alice.login(auth)
    req = engine.propose(proposal())
    assert req.tier == "dual_approval"
    first = alice.vote(req.id, auth)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "pending"
    assert first.json()["quorum_progress"]["counted"] == ["alice"]
    # Bob signs with his Ed25519 key (the CLI's way); both count under the same rules.
    granted = vote(engine, engine.get(req.id), "bob")
    assert granted.status == "granted"
    stored = {v.approver: v.statement for v in engine.get(req.id).votes}
    assert Assertion.from_dict(stored["alice"]["signature"]).credential_id == auth.id
    assert isinstance(stored["bob"]["signature"], str)
    token = engine.warrant(req.id).token
    # The guard re-verifies both approvals (the passkey against its enrolled credential) and runs the action.
    ran: list[str] = []
    engine.guard().execute(token, req.action, lambda action: ran.append(action["type"]))
    assert ran == ["rotate_api_key"]
    assert engine.get(req.id).status == "executed"


def test_reject_with_a_passkey_needs_a_reason_and_ends_the_request(engine: Engine, console: Console) -> None:
    auth = console.enrol("alice")
    console.login(auth)
    req = engine.propose(proposal())
    refused = console.post(f"/ui/api/requests/{req.id}/vote/options", {"verdict": "reject"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "reason_required"
    resp = console.vote(req.id, auth, "reject", reason="the key is in use by the billing run")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "rejected"
    [v] = engine.get(req.id).votes
    assert v.statement["statement"]["reason"] == "the key is in use by the billing run"

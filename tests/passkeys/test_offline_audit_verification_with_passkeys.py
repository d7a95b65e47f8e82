"""An audit export plus the public keys re-verifies passkey approvals offline, exactly like Ed25519 ones.

The export's events are checked as a chain (engine checkpoints), then every
signed vote in it against the approvers' keys: Ed25519 keys and the
passkeys' COSE keys. A changed assertion, a swapped key or a vote moved to
another request fails, naming the event.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hitlgate.engine.approve.passkeys import ApproverKeys, verify_export_approvals
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import load_config
from hitlgate.engine.decide.inventory import encode_public_key, public_raw_bytes
from hitlgate.engine.keys.keyring import b64url_encode
from hitlgate.engine.ledger.audit import AuditEvent, read_export, verify_chain
from hitlgate.errors import AuditChainError, InvalidWarrant
from hitlgate.service.app import create_app
from tests._authenticator import SoftAuthenticator
from tests.cli_project import make_project
from tests.passkeys.conftest import Console
from tests.workflow._helpers import proposal, vote


def _keys(engine: Engine) -> dict[str, Any]:
    """What ``hitlgate approvers keys`` prints."""
    return {"approvers": {n: encode_public_key(public_raw_bytes(a.public_key))
                          for n, a in engine.approvers.all().items()},
            "passkeys": [r.key.to_dict() for r in engine.passkeys.list()]}


def _granted_with_both_kinds(engine: Engine, console: Console) -> str:
    auth = console.enrol("alice")
    console.login(auth)
    req = engine.propose(proposal())
    assert console.vote(req.id, auth).status_code == 200
    assert vote(engine, engine.get(req.id), "bob").status == "granted"
    engine.warrant(req.id)
    engine.checkpoint()
    return req.id


def _exported(engine: Engine) -> tuple[list[AuditEvent], list[Any]]:
    buf = io.StringIO()
    engine.export_audit(buf)
    exported = read_export(io.StringIO(buf.getvalue()))
    return list(exported.events), list(exported.checkpoints)


def test_offline_audit_reverification_with_a_passkey_approval(engine: Engine, console: Console) -> None:
    req_id = _granted_with_both_kinds(engine, console)
    events, checkpoints = _exported(engine)
    # Offline: only the export, the engine's public keys and the approvers' public keys.
    verify_chain(events, checkpoints, engine.keyring.public_keys(include_expired=True))
    keys = ApproverKeys.from_dict(json.loads(json.dumps(_keys(engine))))
    assert verify_export_approvals(events, keys) == 2
    approved = [e for e in events if e.kind == "approved" and e.request_id == req_id]
    assert [e.payload["signed"]["signature"]["type"] for e in approved if e.payload["approver"] == "alice"] == [
        "webauthn"]


@pytest.mark.parametrize("tamper", ["assertion_signature", "statement_digest", "other_request", "swapped_key"])
def test_offline_reverification_refuses_a_changed_passkey_approval(engine: Engine, console: Console,
                                                                   tamper: str) -> None:
    _granted_with_both_kinds(engine, console)
    events, _checkpoints = _exported(engine)
    keys_doc = _keys(engine)
    i = next(i for i, e in enumerate(events) if e.kind == "approved" and e.payload["approver"] == "alice")
    payload = copy.deepcopy(dict(events[i].payload))
    signed = payload["signed"]
    if tamper == "assertion_signature":
        sig = signed["signature"]["signature"]
        signed["signature"]["signature"] = sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")
    elif tamper == "statement_digest":
        signed["statement"]["action_digest"] = "sha256:" + "0" * 64
    elif tamper == "other_request":
        signed["statement"]["request_id"] = "req-000000000000000000000000"
    else:
        other = SoftAuthenticator(origin=keys_doc["passkeys"][0]["origin"], rp_id=keys_doc["passkeys"][0]["rp_id"])
        # Another passkey's real public key in place of alice's.
        keys_doc["passkeys"][0]["public_key"] = b64url_encode(other._cose())
    if tamper != "swapped_key":
        events[i] = AuditEvent(seq=events[i].seq, at=events[i].at, kind=events[i].kind,
                               request_id=events[i].request_id, payload=payload, prev_hash=events[i].prev_hash,
                               hash=events[i].hash)
    with pytest.raises(AuditChainError, match=rf"event seq {events[i].seq} \(approved\): the signed statement "
                                              "does not verify") as caught:
        verify_export_approvals(events, ApproverKeys.from_dict(keys_doc))
    assert caught.value.code == "approval_unverified"


def test_audit_verify_cli_reverifies_passkey_approvals_offline(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    with project.config.open("a") as f:
        f.write("server:\n  public_url: http://127.0.0.1:8080\n")
    engine = Engine.from_config(load_config(project.config))
    try:
        enrolled = project.invoke(["approvers", "enroll", "alice", "--ttl", "10", "--json"])
        assert enrolled.exit_code == 0, enrolled.output
        link = json.loads(enrolled.stdout)
        assert link["approver"] == "alice" and link["url"].startswith("http://127.0.0.1:8080/ui/enroll/")
        token = link["url"].rsplit("/", 1)[1]
        with TestClient(create_app(engine), base_url="http://127.0.0.1:8080") as client:
            console = Console(engine, client)
            auth = SoftAuthenticator(origin="http://127.0.0.1:8080", rp_id="127.0.0.1")
            options = console.post("/ui/api/enroll/options", {"token": token}, csrf=False).json()["publicKey"]
            assert console.post("/ui/api/enroll", {"token": token, "credential": auth.create(options)},
                                csrf=False).status_code == 200
            console.login(auth)
            req_id = project.propose("rotate_api_key", "svc-payments-key", 4)
            assert console.vote(req_id, auth).status_code == 200
        bob = project.invoke(project.approve_args("approve", req_id, "bob"))
        assert bob.exit_code == 0, bob.output
        listed = project.invoke(["approvers", "passkeys", "--json"])
        assert [p["approver"] for p in json.loads(listed.stdout)] == ["alice"]
        export = tmp_path / "audit.jsonl"
        assert project.invoke(["audit", "checkpoint"]).exit_code == 0
        assert project.invoke(["audit", "export", "--out", str(export)]).exit_code == 0
        keys_file = tmp_path / "approver-keys.json"
        keys_file.write_text(project.invoke(["approvers", "keys"]).stdout)
        ok = project.invoke(["audit", "verify", "--file", str(export), "--approver-keys", str(keys_file), "--json"])
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.stdout)["signed_votes_verified"] == 2
        # A keys file that gives alice's passkey another public key: her approval no longer verifies.
        doc = json.loads(keys_file.read_text())
        doc["passkeys"][0]["public_key"] = doc["passkeys"][0]["public_key"][:-6] + "AAAAAA"
        keys_file.write_text(json.dumps(doc))
        bad = project.invoke(["audit", "verify", "--file", str(export), "--approver-keys", str(keys_file), "--json"])
        assert bad.exit_code == 3, bad.output
        assert json.loads(bad.stdout)["error"]["code"] == "approval_unverified"
    finally:
        engine.close()


def test_revoked_passkey_withdraws_its_unused_approval(engine: Engine, browsers: Callable[[], Console]) -> None:
    console = browsers()
    auth = console.enrol("alice")
    console.login(auth)
    req = engine.propose(proposal())
    assert console.vote(req.id, auth).status_code == 200
    assert vote(engine, engine.get(req.id), "bob").status == "granted"
    token = engine.warrant(req.id).token
    engine.passkeys.revoke("alice")
    with pytest.raises(InvalidWarrant, match="its approvals no longer meet the quorum with today's inventory"):
        engine.guard().execute(token, req.action, lambda action: None)

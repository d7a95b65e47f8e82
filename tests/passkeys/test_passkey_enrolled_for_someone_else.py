"""A passkey signs only for the approver it was enrolled for: bob's passkey cannot sign alice's vote."""

from __future__ import annotations

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import ApprovalError
from tests.passkeys._vote import passkey_signed
from tests.passkeys.conftest import Console
from tests.workflow._helpers import proposal


def test_someone_elses_passkey_refused_in_the_console(engine: Engine, console: Console) -> None:
    alice = console.enrol("alice")
    bob = console.enrol("bob")
    console.login(alice)
    req = engine.propose(proposal())
    opts = console.options(req.id)
    resp = console.post(f"/ui/api/requests/{req.id}/vote",
                        {"statement": opts["statement"], "credential": bob.get(opts["publicKey"])})
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "passkey_not_yours"
    assert "enrolled for bob, not alice" in resp.json()["error"]["message"]
    assert engine.get(req.id).votes == ()


def test_someone_elses_passkey_refused_by_the_engine(engine: Engine, console: Console) -> None:
    console.enrol("alice")
    bob = console.enrol("bob")
    req = engine.propose(proposal())
    with pytest.raises(ApprovalError, match="enrolled for bob, not alice"):
        engine.approve(passkey_signed(engine, req, "alice", bob))
    assert engine.get(req.id).votes == ()


def test_session_of_one_approver_cannot_submit_anothers_statement(engine: Engine, console: Console) -> None:
    alice = console.enrol("alice")
    console.enrol("bob")
    console.login(alice)
    req = engine.propose(proposal())
    opts = console.options(req.id)
    statement = {**opts["statement"], "approver": "bob"}
    resp = console.post(f"/ui/api/requests/{req.id}/vote", {"statement": statement,
                                                             "credential": alice.get(opts["publicKey"])})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "approver_mismatch", resp.text

"""The requester's own passkey cannot approve their request: not through the console, not through the engine."""

from __future__ import annotations

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import ApprovalError
from tests.passkeys._vote import passkey_signed
from tests.passkeys.conftest import Console
from tests.workflow._helpers import proposal


def _bobs_request(engine: Engine) -> str:
    doc = proposal()
    doc["requester"] = {"id": "Bob", "kind": "human"}  # Compared case-insensitively with approver names.
    return engine.propose(doc).id


def test_requesters_own_passkey_refused_by_the_console(engine: Engine, console: Console) -> None:
    auth = console.enrol("bob")
    console.login(auth)
    req_id = _bobs_request(engine)
    resp = console.post(f"/ui/api/requests/{req_id}/vote/options", {"verdict": "approve"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "self_approval", resp.text
    assert engine.get(req_id).votes == ()


def test_requesters_own_passkey_refused_by_the_engine(engine: Engine, console: Console) -> None:
    auth = console.enrol("bob")
    req = engine.get(_bobs_request(engine))
    with pytest.raises(ApprovalError, match=r"bob proposed request req-\w+ and cannot also vote on it") as caught:
        engine.approve(passkey_signed(engine, req, "bob", auth))
    assert caught.value.code == "self_approval"
    assert engine.get(req.id).votes == ()

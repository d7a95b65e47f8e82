"""Approvers' reasons travel inside the warrant: a long one must never leave a grant with an unusable warrant.

Each counted approval goes into the warrant whole (its signed statement,
reason included, so the guard can verify it again). A reason of the
allowed 1,000 characters in emoji or Cyrillic used to become ``\\uXXXX``
escapes, 6 to 12 bytes a character, and a warrant the engine signed but
its own guard refused as too long: the request stayed granted with a
warrant nobody could use. Now the claims are UTF-8, the limit fits a
quorum's reasons, and the issuer refuses to sign a token verifiers refuse.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from hitlgate.engine.approve.approvals import Statement, sign
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.keys import warrants
from hitlgate.errors import ApprovalError
from tests.workflow._helpers import T0, demo_key, proposal

SINGLE = proposal("suspend_service_account", "svc-ci-runner")       # carol
DUAL = proposal("rotate_api_key", "svc-payments-key")               # security + team-payments


def _approve(engine: Engine, req, name: str, reason: str):  # noqa: ANN001, ANN202
    st = Statement(req.id, req.action_digest, "approve", name, T0 + timedelta(seconds=1), reason)
    return engine.approve(sign(st, demo_key(name)))


@pytest.mark.parametrize("reason", ["😀" * 1000, "Ж" * 1000, "👩\u200d💻 " * 250, "\\\"" * 500])
def test_a_reason_of_the_full_allowed_length_gives_a_warrant_the_guard_runs(make_engine, reason: str) -> None:
    engine = make_engine()
    req = engine.propose(SINGLE)
    req = _approve(engine, req, "carol", reason)
    assert req.status == "granted"
    token = engine.warrant(req.id).token
    assert len(token) <= warrants.MAX_TOKEN_LENGTH
    ran: list[object] = []
    engine.guard().execute(token, SINGLE["action"], ran.append)
    assert ran == [SINGLE["action"]]


def test_a_dual_approval_with_two_long_reasons_is_usable(make_engine) -> None:
    engine = make_engine()
    req = engine.propose(DUAL)
    req = _approve(engine, req, "alice", "😀" * 1000)
    req = _approve(engine, req, "erin", "Ж" * 1000)
    assert req.status == "granted"
    token = engine.warrant(req.id).token
    ran: list[object] = []
    engine.guard().execute(token, DUAL["action"], ran.append)
    assert ran == [DUAL["action"]]


def test_the_issuer_refuses_a_token_verifiers_would_refuse_and_writes_nothing(make_engine, monkeypatch) -> None:
    engine = make_engine()
    req = _approve(engine, engine.propose(SINGLE), "carol", "😀" * 1000)
    events = len(engine.audit_events(req.id))
    # A verifier limit below this warrant's size (the same constant the verifier reads).
    monkeypatch.setattr(warrants, "MAX_TOKEN_LENGTH", 2048)
    with pytest.raises(ApprovalError, match=r"refusing to issue a warrant of \d+ characters .* longer than 2048"):
        engine.warrant(req.id)
    assert engine.warrant_records([req.id]).get(req.id) is None
    assert len(engine.audit_events(req.id)) == events
    monkeypatch.undo()
    ran: list[object] = []
    engine.guard().execute(engine.warrant(req.id).token, SINGLE["action"], ran.append)
    assert ran == [SINGLE["action"]]

"""Threat: someone with database write access un-consumes a warrant and runs the action again.

Before the fix, ``DELETE FROM consumed_warrants`` (and, for the guard, the
request set back to ``granted``) let the same warrant be consumed a second
time, and ``audit verify`` said OK with two ``consumed`` events for one
warrant id. The audit chain is the tamper-evident record: the guard and
``verify --consume`` now refuse a warrant the chain shows consumed (an
indexed lookup by request id), the engine refuses to issue a second warrant
for a request whose warrant row vanished, and ``audit verify`` reports a
warrant consumed twice and every table row that contradicts the chain.
Real SQLite and PostgreSQL, real keys; the attacker uses raw SQL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import Config
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import AuditChainError, InvalidWarrant, StorageError
from tests.workflow._helpers import granted_warrant, proposal
from tests.workflow._helpers import run_cli as _run

DOC = proposal("suspend_service_account", "svc-ci-runner")


def _unconsume(engine: Engine, request_id: str, *, status: str | None = "granted", warrant: bool = False) -> None:
    """The attack: forget the consumption (and, optionally, the status and the warrant row)."""
    with engine.store.engine.begin() as conn:
        conn.execute(sa.delete(t.consumed).where(t.consumed.c.request_id == request_id))
        if warrant:
            conn.execute(sa.delete(t.warrants).where(t.warrants.c.request_id == request_id))
        if status is not None:
            conn.execute(t.requests.update().where(t.requests.c.id == request_id).values(status=status))


def test_guard_refuses_a_warrant_the_chain_shows_consumed(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    runs: list[Any] = []
    guard = engine.guard()
    guard.execute(token, DOC["action"], runs.append)
    _unconsume(engine, req.id)
    (consumed,) = [e for e in engine.audit_events(req.id) if e.kind == "consumed"]
    with pytest.raises(InvalidWarrant, match=re.escape(
        f"invalid warrant: the audit chain shows request {req.id}'s warrant {consumed.payload['jti']} consumed at "
        f"event {consumed.seq} (replay; the database was changed to hide it)") + "$") as exc:
        guard.execute(token, DOC["action"], runs.append)
    assert exc.value.code == "replay"
    with pytest.raises(InvalidWarrant, match="replay"):
        guard.check(token, DOC["action"])
    assert len(runs) == 1
    assert [e.kind for e in engine.audit_events(req.id)].count("consumed") == 1


def test_no_second_warrant_for_a_request_whose_warrant_row_was_deleted(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    engine.guard().execute(token, DOC["action"], lambda a: None)
    _unconsume(engine, req.id, warrant=True)
    with pytest.raises(StorageError, match=r"no warrant in the database, but the audit chain shows one") as exc:
        engine.warrant(req.id)
    assert exc.value.code == "state_contradicts_chain"


def test_audit_verify_reports_tables_that_contradict_the_chain(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    engine.guard().execute(token, DOC["action"], lambda a: None)
    engine.verify_audit()
    _unconsume(engine, req.id)
    with pytest.raises(AuditChainError, match="the database contradicts it in 2 place") as exc:
        engine.verify_audit()
    assert exc.value.code == "state_contradicts_chain"
    seqs = {e.kind: e.seq for e in engine.audit_events(req.id)}
    jti = engine.warrant_records([req.id])[req.id].jti
    assert list(exc.value.problems) == [
        f"warrant {jti} of request {req.id} is consumed in the chain (event {seqs['consumed']}) but its "
        "consumed_warrants row is missing: the warrant was un-consumed in the database",
        f"request {req.id} is granted in the database, but its last event (executed, seq {seqs['executed']}) "
        "left it executed",
    ]


def test_audit_verify_reports_a_warrant_consumed_twice(engine: Engine) -> None:
    """The chain an older engine left after a replay: two consumed events for one warrant id."""
    req, token = granted_warrant(engine, DOC, ("carol",))
    grant = engine.guard().consume(token, DOC["action"])
    with engine.store.write() as tx:
        tx.append("consumed", request_id=req.id, at=engine.now(),
                  payload={"jti": grant.jti, "status": "granted", "action_digest": req.action_digest})
    with pytest.raises(AuditChainError, match=rf"warrant {grant.jti} was consumed 2 times") as exc:
        engine.verify_audit()
    assert exc.value.code == "replay"


def test_verify_consume_refuses_an_unconsumed_replay(tmp_path: Path) -> None:
    cfg = tmp_path / "hitlgate.yaml"
    cfg.write_text(f"state: sqlite:///{tmp_path / 'state.db'}\nkeys: {tmp_path / 'keys'}\n")
    env = {"HITLGATE_CONFIG": str(cfg)}
    prop = tmp_path / "p.json"
    prop.write_text(json.dumps(proposal("rotate_api_key", "dev-analytics-key")))
    out = json.loads(_run(env, "propose", str(prop), "--json").stdout)
    assert out["status"] == "granted"
    token = json.loads(_run(env, "warrant", out["id"], "--json").stdout)["token"]
    _run(env, "verify", str(prop), "--warrant", token, "--consume")
    eng = Engine.from_config(Config.from_file(cfg))
    try:
        _unconsume(eng, out["id"], status=None)
    finally:
        eng.close()
    err = _run(env, "verify", str(prop), "--warrant", token, "--consume", "--json", code=3)
    assert "the audit chain shows request" in err.output and "replay" in err.output


def test_replay_refusal_is_audited_against_its_request(engine: Engine) -> None:
    from hitlgate.engine.ledger.auditlog import REFUSAL_KIND

    req, token = granted_warrant(engine, DOC, ("carol",))
    engine.guard().execute(token, DOC["action"], lambda a: None)
    with pytest.raises(InvalidWarrant, match=r"already used \(replay\)"):
        engine.guard().execute(token, DOC["action"], lambda a: None)
    refused = [e for e in engine.audit_events(req.id) if e.kind == REFUSAL_KIND]
    assert len(refused) == 1
    assert (refused[0].request_id, refused[0].payload["subject"], refused[0].payload["action_digest"],
            refused[0].payload["status"]) == (req.id, "warrant", req.action_digest, "executed")


@pytest.mark.parametrize("forgery", ["second_issue_event", "issue_event_names_another_warrant"])
def test_chain_that_does_not_show_this_warrant_as_the_one_issued_is_refused(engine: Engine, forgery: str) -> None:
    # A database writer adds a second warrant_issued event for the request, or edits the one there to name
    # another warrant: the chain no longer shows this warrant as the one issued, and the guard refuses it.
    req, token = granted_warrant(engine, DOC, ("carol",))
    (issued,) = [e for e in engine.audit_events(req.id) if e.kind == "warrant_issued"]
    jti = issued.payload["jti"]
    if forgery == "second_issue_event":
        with engine.store.write() as tx:
            tx.append("warrant_issued", request_id=req.id, payload={**issued.payload}, at=engine.now())
    else:
        with engine.store.engine.begin() as conn:
            conn.execute(t.audit_events.update().where(t.audit_events.c.seq == issued.seq)
                         .values(payload=json.dumps({**issued.payload, "jti": "jti-someone-else"}, sort_keys=True)))
    ran: list[Any] = []
    with pytest.raises(InvalidWarrant, match=re.escape(
        f"invalid warrant: the audit chain does not show warrant {jti} as the one issued for request {req.id}")
            + "$") as exc:
        engine.guard().execute(token, DOC["action"], ran.append)
    assert exc.value.code == "state_contradicts_chain" and not ran

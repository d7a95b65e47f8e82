"""Every guard refusal before the store is read: said word for word, and recorded with the digest presented.

An auditor reading the chain sees each refused attempt: a malformed action,
a warrant that does not verify, a warrant for a request this store does not
hold. The refusal event carries the digest of the action presented (none
for an action that cannot be hashed). A time without a zone is refused by
name. Real SQLite and PostgreSQL, real keys.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.decide.proposal import action_digest
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import InvalidWarrant
from tests.workflow._helpers import FakeClock, granted_warrant, proposal

DOC = proposal("suspend_service_account", "svc-ci-runner")


def _last_refusal(engine: Engine) -> dict[str, object]:
    last = engine.audit_events()[-1]
    assert (last.kind, last.request_id) == ("warrant_refused", None)
    return dict(last.payload)


def test_malformed_action_is_refused_and_recorded_without_a_digest(engine: Engine) -> None:
    _req, token = granted_warrant(engine, DOC, ("carol",))
    bad = {"type": "suspend_service_account", "target": "svc-ci-runner"}
    with pytest.raises(InvalidWarrant, match="^" + re.escape(
            "invalid warrant: the action is malformed: invalid action: 1 problem(s)\n"
            "  - (document): must be an object with type, target and parameters") + "$"):
        engine.guard().check(token, bad)
    assert _last_refusal(engine)["presented_digest"] is None


def test_warrant_that_does_not_verify_is_recorded_with_the_digest_presented(engine: Engine) -> None:
    _req, token = granted_warrant(engine, DOC, ("carol",))
    other = {**DOC["action"], "parameters": {"note": "not what was approved"}}
    with pytest.raises(InvalidWarrant, match=r"^invalid warrant: warrant is bound to a different action "
                                             r"\(action digest mismatch\)$") as exc:
        engine.guard().check(token, other)
    assert exc.value.code == "digest_mismatch"
    assert _last_refusal(engine)["presented_digest"] == action_digest(other)


def test_warrant_for_a_request_this_store_does_not_hold_is_refused_and_recorded(engine: Engine) -> None:
    req, token = granted_warrant(engine, DOC, ("carol",))
    with engine.store.engine.begin() as conn:
        for table in (t.consumed, t.idempotency_keys, t.request_nudges, t.revocations, t.votes, t.warrants):
            conn.execute(table.delete().where(table.c.request_id == req.id))
        conn.execute(t.requests.delete().where(t.requests.c.id == req.id))
    with pytest.raises(InvalidWarrant, match=f"^invalid warrant: request {req.id} does not exist in this store$"):
        engine.guard().check(token, DOC["action"])
    assert _last_refusal(engine)["presented_digest"] == req.action_digest


def test_check_at_a_naive_time_is_refused_by_name(engine: Engine, clock: FakeClock) -> None:
    _req, token = granted_warrant(engine, DOC, ("carol",))
    with pytest.raises(ValueError, match="^now must be timezone-aware$"):
        engine.guard().check(token, DOC["action"], now=clock.now.replace(tzinfo=None))


def test_guard_judges_time_by_its_own_clock_when_given_one(engine: Engine, clock: FakeClock) -> None:
    # An executor whose clock is past the warrant's expiry refuses it, whatever the engine's clock says.
    req, token = granted_warrant(engine, DOC, ("carol",))
    later = clock.now + timedelta(seconds=engine.warrant_lifetime(req.decision) + 1)
    with pytest.raises(InvalidWarrant, match="expired") as exc:
        engine.guard(clock=lambda: later).check(token, DOC["action"])
    assert exc.value.code == "expired"
    assert engine.guard().check(token, DOC["action"]).request_id == req.id

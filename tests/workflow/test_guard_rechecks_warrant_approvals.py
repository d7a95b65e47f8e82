"""The guard re-verifies the approvals a warrant carries (check 7), exactly as they were signed.

* Threat: a warrant approved with the public demo keys, issued by an engine
  in demo mode, is presented to a guard on the same store and keys outside
  demo mode. The demo keys count only in demo mode: refused.
* An approval signed with a reason is verified with that reason (it is
  part of what was signed), so a warrant whose approvals carry reasons is
  accepted, and the reason is not dropped or replaced on the way.
"""

from __future__ import annotations

import pytest

from hitlgate.engine.approve.approvals import Statement, sign
from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import InvalidWarrant
from tests.workflow._helpers import demo_key, granted_warrant, proposal

DOC = proposal("suspend_service_account", "svc-ci-runner")


def test_demo_key_approvals_are_refused_by_a_guard_outside_demo_mode(make_engine) -> None:  # noqa: ANN001
    demo: Engine = make_engine(demo=True)
    req, token = granted_warrant(demo, DOC, ("carol",))
    production: Engine = make_engine(demo=False)
    ran: list[object] = []
    with pytest.raises(InvalidWarrant, match=r"^invalid warrant: its approvals no longer meet the quorum with today's "
                                             r"inventory \(carol's approval does not verify against the key "
                                             r"registered for carol today\)") as err:
        production.guard().execute(token, DOC["action"], ran.append)
    assert err.value.code == "approval_withdrawn" and not ran
    # The same warrant is good in demo mode.
    assert demo.guard().execute(token, DOC["action"], lambda _a: "ran") == "ran"
    assert req.id


def test_approval_signed_with_a_reason_is_verified_with_it(engine: Engine) -> None:
    req = engine.propose(DOC)
    reason = "INC-7: confirmed with the owner"
    statement = Statement(req.id, req.action_digest, "approve", "carol", engine.now(), reason)
    req = engine.approve(sign(statement, demo_key("carol")))
    assert req.status == "granted"
    token = engine.warrant(req.id).token
    assert engine.guard().execute(token, DOC["action"], lambda _a: "ran") == "ran"

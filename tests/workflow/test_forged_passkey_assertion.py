"""Attack: a vote carrying a made-up passkey assertion (well-formed, signed by nothing enrolled).

A passkey-signed statement is checked against the approver's enrolled
passkeys, as an Ed25519 one is against the registered key: an assertion no
enrolled credential made is refused, and no vote is stored. Real SQLite and
PostgreSQL; real WebAuthn verification (``tests/passkeys`` runs real ceremonies).
"""

from __future__ import annotations

import pytest

from hitlgate.engine.approve._webauthn import ASSERTION_TYPE
from hitlgate.engine.approve.approvals import SignedStatement, Statement
from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import ApprovalError
from tests.workflow._helpers import FakeClock, proposal

MESSAGE = r"^carol's passkey Y3JlZA is not enrolled or was revoked$"
MADE_UP = {"type": ASSERTION_TYPE, "credential_id": "Y3JlZA", "authenticator_data": "YXV0aA",
           "client_data_json": "e30", "signature": "c2ln"}


@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_made_up_passkey_assertion_is_refused_and_no_vote_is_stored(
    engine: Engine, clock: FakeClock, verdict: str
) -> None:
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    forged = SignedStatement(Statement(req.id, req.action_digest, verdict, "carol", clock.now), dict(MADE_UP))
    submit = engine.approve if verdict == "approve" else engine.reject
    with pytest.raises(ApprovalError, match=MESSAGE):
        submit(forged)
    after = engine.get(req.id)
    assert (after.status, after.votes) == ("pending", ())

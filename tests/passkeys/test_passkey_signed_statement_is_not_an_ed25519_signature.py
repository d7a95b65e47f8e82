"""A passkey-signed statement is checked as one: never against an Ed25519 key, never when dated in the future."""

from __future__ import annotations

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import ApprovalError
from tests.passkeys._vote import passkey_signed
from tests.passkeys.conftest import Console
from tests.workflow._helpers import FakeClock, proposal


def test_passkey_assertion_offered_as_an_ed25519_signature_is_refused(engine: Engine, console: Console) -> None:
    auth = console.enrol("alice")
    req = engine.get(engine.propose(proposal()).id)
    signed = passkey_signed(engine, req, "alice", auth)
    ed25519_key = engine.approvers.get("alice").public_key
    with pytest.raises(ApprovalError, match=r"alice's approve is signed with a passkey, not an Ed25519 key; "
                                            r"it is verified against the approver's enrolled passkeys"):
        signed.verify(ed25519_key)


def test_passkey_statement_dated_in_the_future_is_refused(engine: Engine, console: Console,
                                                          clock: FakeClock) -> None:
    auth = console.enrol("alice")
    req = engine.get(engine.propose(proposal()).id)
    clock.advance(600)  # Signed ten minutes ahead of the engine's clock (beyond the allowed skew)...
    signed = passkey_signed(engine, req, "alice", auth)
    clock.advance(-600)  # ...and submitted now.
    with pytest.raises(ApprovalError, match=r"alice's statement is dated in the future \("):
        engine.approve(signed)
    assert engine.get(req.id).votes == ()

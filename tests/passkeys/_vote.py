"""Passkey votes made by hand (what a console would send, without the routes' own pre-checks)."""

from __future__ import annotations

import hashlib

from hitlgate.engine.approve._webauthn import Assertion
from hitlgate.engine.approve.approvals import SignedStatement, Statement
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.keys.keyring import b64url_encode
from hitlgate.engine.ledger.store import Request
from tests._authenticator import SoftAuthenticator


def passkey_signed(engine: Engine, req: Request, name: str, auth: SoftAuthenticator, verdict: str = "approve",
                   **faults: object) -> SignedStatement:
    """``name``'s statement on ``req``, signed by the passkey ``auth`` (faults go to the authenticator)."""
    statement = Statement(req.id, req.action_digest, verdict, name, engine.now())  # type: ignore[arg-type]
    challenge = b64url_encode(hashlib.sha256(statement.canonical()).digest())
    return SignedStatement(statement, Assertion.from_browser(auth.get(challenge, **faults)).to_dict())  # type: ignore[arg-type]

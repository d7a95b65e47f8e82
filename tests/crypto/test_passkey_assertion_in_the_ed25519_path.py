"""Fault: a statement signed with a passkey (a WebAuthn assertion) meets code made for Ed25519 signatures.

An assertion is verified only against the approver's enrolled passkeys: offered
to the Ed25519 check it is refused, and the refusal says where it belongs.
Its JSON form is a copy: a caller that edits the document it was given (to
send it on, to redact it) cannot change the statement it came from. The
assertion's parts here are well-formed base64url, not a real ceremony
(``tests/passkeys`` runs real ones against the console).
"""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.approve._webauthn import ASSERTION_TYPE
from hitlgate.engine.approve.approvals import SignedStatement
from hitlgate.errors import ApprovalError

from .conftest import make_statement

ASSERTION = {"type": ASSERTION_TYPE, "credential_id": "Y3JlZA", "authenticator_data": "YXV0aA",
             "client_data_json": "e30", "signature": "c2ln"}


def test_passkey_assertion_offered_to_the_ed25519_check_is_refused_with_where_it_belongs() -> None:
    signed = SignedStatement(make_statement(), dict(ASSERTION))
    assert signed.is_passkey
    with pytest.raises(ApprovalError, match=r"^alice's approve is signed with a passkey, not an Ed25519 key; "
                                            r"it is verified against the approver's enrolled passkeys$"):
        signed.verify(Ed25519PrivateKey.generate().public_key())


def test_json_form_of_a_passkey_statement_is_a_copy() -> None:
    signed = SignedStatement(make_statement(), dict(ASSERTION))
    doc = signed.to_dict()
    assert doc["signature"] == ASSERTION
    doc["signature"]["signature"] = "ZWRpdGVk"
    assert signed.signature["signature"] == "c2ln"  # type: ignore[index]
    assert json.loads(json.dumps(signed.to_dict()))["signature"] == ASSERTION


def test_passkey_statement_keeps_its_own_copy_of_the_assertion() -> None:
    given = dict(ASSERTION)
    signed = SignedStatement(make_statement(), given)
    given["signature"] = "ZWRpdGVk"  # The caller reuses its dict: the statement does not change with it.
    assert signed.signature == ASSERTION
    assert type(SignedStatement(make_statement(), MappingProxyType(ASSERTION)).signature) is dict

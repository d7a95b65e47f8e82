"""Fault: an approval document from outside has the wrong shape.

A signed approval arrives as a file, a request body or a stored vote row;
each of its fields can be missing, of the wrong type, or spelled twice.
Every such document is refused as bad input (``invalid_signed_approval`` or
``invalid_approval_statement``) whose message names the field, never a
``TypeError`` from deep inside the parser.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.approve.approvals import SignedStatement, Statement, sign
from hitlgate.engine.keys.keyring import b64url_encode
from hitlgate.errors import ApprovalError, ValidationError

from .conftest import make_statement

_SIGNED = r"^invalid signed approval: 1 problem\(s\)\n  - "
_STATEMENT = r"^invalid approval statement: 1 problem\(s\)\n  - "


def _signed_doc() -> dict[str, Any]:
    return sign(make_statement(), Ed25519PrivateKey.generate()).to_dict()


@pytest.mark.parametrize("doc", [[], "statement", None, 7])
def test_signed_approval_that_is_not_an_object(doc: object) -> None:
    with pytest.raises(ValidationError, match=_SIGNED + r"\(document\): must be an object$") as exc:
        SignedStatement.from_dict(doc)
    assert exc.value.code == "invalid_signed_approval"


@pytest.mark.parametrize("doc", [[], "statement", None, 7])
def test_statement_that_is_not_an_object(doc: object) -> None:
    with pytest.raises(ValidationError, match=_STATEMENT + r"\(document\): must be an object$") as exc:
        Statement.from_dict(doc)
    assert exc.value.code == "invalid_approval_statement"


def test_signed_approval_with_non_string_keys_is_bad_input_not_a_crash() -> None:
    # A caller handing a Python mapping (not parsed JSON) can use any key;
    # sorting mixed key types for the message must not raise TypeError.
    doc: dict[Any, Any] = {**_signed_doc(), 1: "x", None: "y"}
    with pytest.raises(ValidationError, match=r"^invalid signed approval: 2 problem\(s\)\n  - 1: unknown field\n"
                                              r"  - None: unknown field$"):
        SignedStatement.from_dict(doc)


def test_statement_with_non_string_keys_is_bad_input_not_a_crash() -> None:
    doc: dict[Any, Any] = {**make_statement().to_dict(), 1: "x", None: "y"}
    with pytest.raises(ValidationError, match=r"^invalid approval statement: 2 problem\(s\)\n  - 1: unknown field\n"
                                              r"  - None: unknown field$"):
        Statement.from_dict(doc)


@pytest.mark.parametrize("signature", [None, 64, ["A" * 86], b"A" * 86])
def test_signature_of_the_wrong_type(signature: object) -> None:
    doc = {**_signed_doc(), "signature": signature}
    with pytest.raises(ValidationError, match=_SIGNED + "signature: must be a base64url string or a WebAuthn "
                                                        "assertion object$"):
        SignedStatement.from_dict(doc)


@pytest.mark.parametrize("reason", ["", None, 0, 5, ["why"], {"why": "because"}])
def test_reason_present_but_empty_or_not_a_string(reason: object) -> None:
    # An empty reason is spelled by leaving the field out: a second spelling
    # would give one approval two signed forms.
    doc = {**make_statement().to_dict(), "reason": reason}
    expected = _STATEMENT + r"reason: must be a non-empty string \(leave it out for no reason\)$"
    with pytest.raises(ValidationError, match=expected):
        Statement.from_dict(doc)
    with pytest.raises(ValidationError, match=expected):
        SignedStatement.from_dict({**_signed_doc(), "statement": doc})


def test_signed_approval_built_around_something_that_is_not_a_statement_is_refused() -> None:
    with pytest.raises(ValidationError, match=_SIGNED + r"statement: must be a Statement$"):
        SignedStatement({"request_id": "req-0001"}, "x" * 86)  # type: ignore[arg-type]


def test_statement_signed_with_a_key_that_is_not_ed25519_is_refused() -> None:
    with pytest.raises(ApprovalError, match=r"^approval statements are signed with Ed25519 keys only$"):
        sign(make_statement(), generate_private_key(SECP256R1()))  # type: ignore[arg-type]


@pytest.mark.parametrize("signature", ["not base64!", "a" * 85 + "="])
def test_signature_that_is_not_unpadded_base64url_is_refused_by_name(signature: str) -> None:
    with pytest.raises(ValidationError, match=_SIGNED + r"signature: must be unpadded base64url$"):
        SignedStatement(make_statement(), signature)


@pytest.mark.parametrize("size", [32, 63, 65])
def test_signature_of_the_wrong_length_is_refused_by_name(size: int) -> None:
    with pytest.raises(ValidationError, match=_SIGNED + r"signature: an Ed25519 signature is 64 bytes$"):
        SignedStatement(make_statement(), b64url_encode(b"\x01" * size))

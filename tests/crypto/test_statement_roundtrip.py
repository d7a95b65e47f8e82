"""Approval statements: one canonical spelling, strict parsing, sign/verify round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.approve.approvals import SignedStatement, Statement, sign
from hitlgate.engine.decide.inventory import decode_public_key
from hitlgate.engine.keys.keyring import generate_approver_key, load_approver_key
from hitlgate.errors import ValidationError

from .conftest import DIGEST, NOW, make_statement


def test_canonical_bytes_are_rfc8785() -> None:
    assert make_statement().canonical() == (
        b'{"action_digest":"' + DIGEST.encode() + b'","approver":"alice","at":"2025-01-31T12:00:00Z",'
        b'"request_id":"req-0001","verdict":"approve"}'
    )


def test_file_round_trip_with_a_generated_key(tmp_path: Path) -> None:
    public_text = generate_approver_key(tmp_path / "alice.pem")
    signed = sign(make_statement(), load_approver_key(tmp_path / "alice.pem"))
    again = SignedStatement.from_json(signed.to_json())
    assert again == signed
    assert SignedStatement.from_dict(signed.to_dict()) == signed
    again.verify(decode_public_key(public_text))


def test_sub_second_times_are_truncated_to_what_is_signed() -> None:
    s = make_statement(at=NOW + timedelta(microseconds=999_999))
    assert s.at == NOW and Statement.from_dict(s.to_dict()) == s


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"at": datetime(2025, 1, 31, 12, 0, 0)}, "at"),  # noqa: DTZ001 - naive on purpose.
        ({"at": datetime(2025, 1, 31, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))}, "at"),
        ({"at": "2025-01-31T12:00:00Z"}, "at"),
        ({"verdict": "approved"}, "verdict"),
        ({"verdict": "APPROVE"}, "verdict"),
        ({"action_digest": "sha256:" + "A" * 64}, "action_digest"),
        ({"action_digest": "sha1:" + "a" * 40}, "action_digest"),
        ({"approver": ""}, "approver"),
        ({"approver": "alice\nbob"}, "approver"),
        ({"request_id": "r" * 257}, "request_id"),
    ],
)
def test_constructor_enforces_invariants(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=f"{field}:"):
        make_statement(**fields)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"at": "2025-01-31T12:00:00+00:00"}, "at"),
        ({"at": "2025-01-31T12:00:00.5Z"}, "at"),
        ({"at": "2025-02-30T12:00:00Z"}, "at"),
        ({"at": 1738324800}, "at"),
        ({"verdict": 1}, "verdict"),
        ({"approver": None}, "approver"),
        ({"role": "admin"}, "role"),
    ],
)
def test_from_dict_names_the_bad_field(edit: dict[str, object], field: str) -> None:
    doc = {**make_statement().to_dict(), **edit}
    with pytest.raises(ValidationError, match=f"{field}:"):
        Statement.from_dict(doc)


def test_from_dict_names_missing_fields() -> None:
    doc = make_statement().to_dict()
    del doc["verdict"]
    with pytest.raises(ValidationError, match="verdict: required field is missing"):
        Statement.from_dict(doc)


def test_signed_file_must_be_exactly_statement_and_signature() -> None:
    doc = sign(make_statement(), load_key()).to_dict()
    with pytest.raises(ValidationError, match="kid: unknown field"):
        SignedStatement.from_dict({**doc, "kid": "x"})
    with pytest.raises(ValidationError, match="malformed JSON"):
        SignedStatement.from_json("{not json")
    with pytest.raises(ValidationError, match="must be an object"):
        SignedStatement.from_json(json.dumps([doc]))


def load_key() -> Ed25519PrivateKey:
    """A throwaway Ed25519 key (no file needed)."""
    return Ed25519PrivateKey.generate()


def test_statements_are_frozen() -> None:
    s = make_statement()
    with pytest.raises(AttributeError, match="cannot assign to field 'verdict'"):
        s.verdict = "reject"  # type: ignore[misc]
    assert s.at.tzinfo == UTC


def test_oversized_approval_file_is_refused_by_its_byte_size() -> None:
    # The limit is on bytes, whatever type the caller passes: a str of
    # multi-byte characters under the limit in characters but over it in
    # bytes is refused too, before any parsing.
    from hitlgate.engine.limits import DEFAULT_LIMITS

    limit = DEFAULT_LIMITS.approval_bytes
    text = sign(make_statement(), Ed25519PrivateKey.generate()).to_json()
    exact = text + " " * (limit - len(text.encode()))
    assert SignedStatement.from_json(exact).statement == make_statement()
    assert SignedStatement.from_json(exact.encode()).statement == make_statement()
    for over in (exact + " ", (exact + " ").encode(), text + "é" * ((limit - len(text)) // 2 + 1)):
        assert len(over) <= limit + 1
        with pytest.raises(ValidationError, match=r"\(document\): larger than the limit of 16384 bytes") as exc:
            SignedStatement.from_json(over)
        assert exc.value.code == "input_too_large"


def test_malformed_approval_file_names_the_document() -> None:
    expected = r"^invalid signed approval: 1 problem\(s\)\n  - \(document\): malformed JSON"
    with pytest.raises(ValidationError, match=expected):
        SignedStatement.from_json("{bad")


def test_approval_file_is_indented_with_sorted_keys() -> None:
    # The file an approver hands over (``hitlgate approve --out``) is meant
    # to be read by people and diffed; its layout is part of the contract.
    signed = sign(make_statement(), Ed25519PrivateKey.generate())
    text = signed.to_json()
    assert text == json.dumps(signed.to_dict(), indent=2, sort_keys=True) + "\n"
    assert text.startswith('{\n  "signature": "') and '\n  "statement": {\n    "action_digest": ' in text

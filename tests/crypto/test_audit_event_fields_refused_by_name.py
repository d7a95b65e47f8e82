"""An audit event with a field out of its form is refused by that field's name.

Audit events come back from the database, which a writer with access can
edit: a seq before the chain's start, a local time, an unknown kind, a
request id that is not one, a payload that is not an object or cannot be
canonicalised, or a hash that is not a SHA-256 digest in its one spelling
must each be refused, naming the field, before any hash is compared.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta, timezone
from typing import Any

import pytest

from hitlgate.engine.ledger.audit import GENESIS_HASH, KINDS, AuditEvent, event_after, next_event
from hitlgate.errors import ValidationError

from .conftest import NOW

HEX = "ab" * 32


@pytest.fixture
def genuine() -> AuditEvent:
    return next_event(None, kind="approved", request_id="req-1", payload={"approver": "alice"}, at=NOW)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("seq", 0, "seq: must be an integer >= 1"),
        ("seq", True, "seq: must be an integer >= 1"),
        ("seq", "1", "seq: must be an integer >= 1"),
        ("at", NOW.replace(tzinfo=None), "at: must be a timezone-aware UTC datetime"),
        ("at", NOW.astimezone(timezone(timedelta(hours=1))), "at: must be a timezone-aware UTC datetime"),
        ("kind", "granted_by_db_writer", f"kind: 'granted_by_db_writer' is not one of {sorted(KINDS)}"),
        ("request_id", "", "request_id: must be a non-empty string or null"),
        ("request_id", 7, "request_id: must be a non-empty string or null"),
        ("payload", ["approver", "alice"], "payload: must be an object"),
        ("prev_hash", "sha256:" + HEX.upper(), "prev_hash: must be sha256: followed by 64 lowercase hex digits"),
        ("prev_hash", None, "prev_hash: must be sha256: followed by 64 lowercase hex digits"),
        ("hash", "sha256:" + HEX[:-1], "hash: must be sha256: followed by 64 lowercase hex digits"),
        ("hash", "sha512:" + HEX, "hash: must be sha256: followed by 64 lowercase hex digits"),
    ],
)
def test_a_field_out_of_form_is_refused_by_name(genuine: AuditEvent, field: str, value: Any, problem: str) -> None:
    seq = value if field == "seq" else genuine.seq
    message = f"invalid audit event {seq!r}: 1 problem(s)\n  - {problem}"
    with pytest.raises(ValidationError, match="^" + re.escape(message) + "$") as err:
        dataclasses.replace(genuine, **{field: value})
    assert list(err.value.problems) == [problem]


def test_a_payload_that_is_not_canonical_json_is_refused(genuine: AuditEvent) -> None:
    with pytest.raises(ValidationError, match=r"^invalid audit event 1: 1 problem\(s\)\n  - payload: not canonical "
                                              r"JSON: .+$") as err:
        dataclasses.replace(genuine, payload={"n": float("nan")})
    (problem,) = err.value.problems
    assert problem.startswith("payload: not canonical JSON: ")


def test_the_smallest_seq_and_a_null_request_id_are_accepted(genuine: AuditEvent) -> None:
    assert dataclasses.replace(genuine, seq=1, request_id=None).request_id is None


def test_the_payload_is_a_private_copy(genuine: AuditEvent) -> None:
    # The caller changing its dict afterwards must not change the event (nor its hash's input).
    payload = {"approver": "alice", "list": [1]}
    event = dataclasses.replace(genuine, payload=payload)
    payload["approver"] = "mallory"
    payload["list"].append(2)  # type: ignore[attr-defined]
    assert event.payload == {"approver": "alice", "list": [1]}


@pytest.mark.parametrize("payload", [[1, 2, 3], 42, "text"], ids=["a-list", "a-number", "a-string"])
def test_a_payload_that_is_not_a_mapping_is_refused_naming_the_event_it_would_have_been(payload: Any) -> None:
    # The refusal names the event the append would have made (the one after the head), so a log of
    # refused appends points at the right place in the chain.
    with pytest.raises(ValidationError, match=r"^invalid audit event 8: 1 problem\(s\)\n  - payload: not canonical "
                                              r"JSON: .+$") as err:
        event_after(7, GENESIS_HASH, kind="approved", request_id="req-1", payload=payload, at=NOW)
    (problem,) = err.value.problems
    assert problem.startswith("payload: not canonical JSON: ")

"""A forged or damaged approval, audit event or checkpoint is refused with the document and field named.

An auditor re-verifying an export, or an approver whose signed statement is
refused, must learn which document and which field is wrong, with the
stable code a script branches on; never a bare parse error.
"""

from __future__ import annotations

import re

import pytest

from hitlgate.engine.approve.approvals import SignedStatement
from hitlgate.engine.ledger.audit import AuditEvent, Checkpoint
from hitlgate.engine.limits import DEFAULT_LIMITS
from hitlgate.errors import ValidationError

EVENT = {"seq": 1, "at": "2026-01-01T00:00:00.000000Z", "kind": "proposed", "request_id": None, "payload": {},
         "prev_hash": "sha256:" + "0" * 64, "hash": "sha256:" + "0" * 64}
CHECKPOINT = {"seq": 1, "head_hash": "sha256:" + "0" * 64, "at": "2026-01-01T00:00:00.000000Z", "token": "t",
              "kid": "k"}


def _refused(call: object, message: str, code: str) -> None:
    with pytest.raises(ValidationError, match=f"^{re.escape(message)}$") as exc:
        call()  # type: ignore[operator]
    assert exc.value.code == code


def test_malformed_signed_approval_is_named() -> None:
    _refused(lambda: SignedStatement.from_json("{bad"),
             "invalid signed approval: 1 problem(s)\n  - (document): malformed JSON at line 1, column 2: "
             "Expecting property name enclosed in double quotes", "invalid_signed_approval")


def test_oversized_signed_approval_is_refused_before_parsing() -> None:
    limit = DEFAULT_LIMITS.approval_bytes
    _refused(lambda: SignedStatement.from_json("x" * (limit + 1)),
             f"invalid signed approval: 1 problem(s)\n  - (document): larger than the limit of {limit} bytes "
             f"({limit + 1} bytes)", "input_too_large")


def test_audit_event_with_a_field_added_is_refused() -> None:
    _refused(lambda: AuditEvent.from_dict({**EVENT, "approved": True}),
             "invalid audit event: 1 problem(s)\n  - (document): must be an object with exactly "
             "['at', 'hash', 'kind', 'payload', 'prev_hash', 'request_id', 'seq']", "invalid_audit_event")


def test_audit_event_with_a_forged_time_is_refused() -> None:
    _refused(lambda: AuditEvent.from_dict({**EVENT, "at": "yesterday"}),
             "invalid audit event: 1 problem(s)\n  - at: 'yesterday' is not an RFC 3339 UTC time with microseconds",
             "invalid_audit_event")


def test_checkpoint_with_a_field_missing_or_a_forged_time_is_refused() -> None:
    _refused(lambda: Checkpoint.from_dict({k: v for k, v in CHECKPOINT.items() if k != "kid"}),
             "invalid audit checkpoint: 1 problem(s)\n  - (document): must be an object with exactly "
             "['at', 'head_hash', 'kid', 'seq', 'token']", "invalid_audit_checkpoint")
    _refused(lambda: Checkpoint.from_dict({**CHECKPOINT, "at": "soon"}),
             "invalid audit checkpoint: 1 problem(s)\n  - at: 'soon' is not an RFC 3339 UTC time with microseconds",
             "invalid_audit_checkpoint")


def test_well_formed_documents_parse() -> None:
    assert AuditEvent.from_dict(EVENT).seq == 1
    assert Checkpoint.from_dict(CHECKPOINT).kid == "k"


def test_a_seq_named_in_the_message_stays_out_of_the_code() -> None:
    # The event's seq is in the message, for the auditor; the code stays one a script can branch on.
    for seq in (7, 123456):
        with pytest.raises(ValidationError, match=f"^invalid audit event {seq}: ") as exc:
            AuditEvent.from_dict({**EVENT, "seq": seq, "kind": "made_up"})
        assert exc.value.code == "invalid_audit_event"
    with pytest.raises(ValidationError, match="^invalid audit event 0: ") as exc:
        AuditEvent.from_dict({**EVENT, "seq": 0})
    assert exc.value.code == "invalid_audit_event"


@pytest.mark.parametrize(("what", "code"), [
    ("proposal", "invalid_proposal"), ("signed approval", "invalid_signed_approval"),
    ("Rego file", "invalid_rego_file"), ("audit event 'x'", "invalid_audit_event"),
    ("policy pack ./p/é", "invalid_policy_pack"), ("5", "invalid_input"), ("", "invalid_input"),
])
def test_the_default_code_is_built_from_the_leading_words_only(what: str, code: str) -> None:
    assert ValidationError(what, ["x"]).code == code
    assert ValidationError(what, ["x"], code="bad_encoding").code == "bad_encoding"

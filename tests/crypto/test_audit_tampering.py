"""Audit tampering: edits, deletions, insertions, reordering, rewrites behind checkpoints, forgeries."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.engine.ledger.audit import (
    GENESIS_HASH,
    AuditEvent,
    Checkpoint,
    export_jsonl,
    next_event,
    read_export,
    read_jsonl,
    sign_checkpoint,
    verify_chain,
)
from hitlgate.errors import AuditChainError, ValidationError

from .conftest import NOW

KINDS = ["proposed", "decided", "approved", "approved", "granted", "warrant_issued", "consumed", "executed"]


def _chain(n: int = 10, start: AuditEvent | None = None) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    prev = start
    for i in range(n):
        prev = next_event(
            prev,
            kind=KINDS[i % len(KINDS)],
            request_id=f"req-{i // len(KINDS)}",
            payload={"i": i, "note": f"event {i}", "nested": {"ok": True}},
            at=NOW + timedelta(seconds=i, microseconds=123),
        )
        events.append(prev)
    return events


def _rehash_from(events: list[AuditEvent], index: int) -> list[AuditEvent]:
    """What an attacker with write access does: recompute every hash after an edit."""
    out = events[:index]
    for e in events[index:]:
        out.append(
            next_event(out[-1] if out else None, kind=e.kind, request_id=e.request_id, payload=e.payload, at=e.at)
        )
    return out


@pytest.fixture
def keys(keyring: EngineKeyring) -> dict[str, Ed25519PublicKey]:
    """The engine's public keys as an auditor holds them."""
    return EngineKeyring.from_jwks(keyring.jwks(NOW))


@pytest.fixture
def signed(keyring: EngineKeyring) -> tuple[list[AuditEvent], list[Checkpoint]]:
    """A ten-event chain with signed checkpoints at seq 5 and seq 10."""
    events = _chain()
    return events, [sign_checkpoint(keyring, events[4], NOW), sign_checkpoint(keyring, events[9], NOW)]


def test_intact_chain_verifies(signed: tuple[list[AuditEvent], list[Checkpoint]], keys: dict) -> None:
    events, cps = signed
    report = verify_chain(events, cps, keys)
    assert (report.events_checked, report.last_seq, report.head_hash, report.checkpoints_verified) == (
        10,
        10,
        events[-1].hash,
        2,
    )
    assert events[0].prev_hash == GENESIS_HASH and events[0].seq == 1
    assert verify_chain([]).events_checked == 0


def test_edited_event_is_named(signed: tuple[list[AuditEvent], list[Checkpoint]], keys: dict) -> None:
    events, cps = signed
    events[3] = dataclasses.replace(events[3], payload={"i": 3, "note": "nothing to see"})
    with pytest.raises(AuditChainError, match="event seq 4 was modified"):
        verify_chain(events, cps, keys)


@pytest.mark.parametrize(
    "edit",
    [{"kind": "denied"}, {"request_id": "req-other"}, {"at": NOW}, {"request_id": None}],
)
def test_every_field_is_covered_by_the_hash(edit: dict[str, object]) -> None:
    events = _chain()
    events[6] = dataclasses.replace(events[6], **edit)  # type: ignore[arg-type]
    with pytest.raises(AuditChainError, match="event seq 7 was modified"):
        verify_chain(events)


def test_deleted_event_is_named() -> None:
    events = _chain()
    del events[3]
    with pytest.raises(AuditChainError, match="event seq 5: seq 4 missing: events were deleted"):
        verify_chain(events)
    with pytest.raises(AuditChainError, match="seq 1..2 missing"):
        verify_chain(_chain()[2:])


def test_inserted_event_is_named() -> None:
    events = _chain()
    forged = next_event(events[3], kind="approved", request_id="req-0", payload={"by": "mallory"}, at=NOW)
    events.insert(4, forged)
    with pytest.raises(AuditChainError, match="event seq 5 is out of order, found after seq 5: an event was inserted"):
        verify_chain(events)


def test_inserted_event_with_renumbering_breaks_the_links() -> None:
    events = _chain()
    forged = next_event(events[3], kind="approved", request_id="req-0", payload={"by": "mallory"}, at=NOW)
    renumbered = [dataclasses.replace(e, seq=e.seq + 1) for e in events[4:]]
    with pytest.raises(AuditChainError, match="event seq 6 does not link to seq 5"):
        verify_chain([*events[:4], forged, *renumbered])


def test_reordered_events_are_named() -> None:
    events = _chain()
    events[3], events[4] = events[4], events[3]
    with pytest.raises(AuditChainError, match="event seq 5: seq 4 missing: events were deleted or reordered"):
        verify_chain(events)
    # Swapping contents but keeping the seq numbers in place breaks the hash chain.
    events = _chain()
    a, b = events[3], events[4]
    events[3] = dataclasses.replace(b, seq=4)
    events[4] = dataclasses.replace(a, seq=5)
    with pytest.raises(AuditChainError, match="event seq 4 does not link to seq 3"):
        verify_chain(events)


def test_full_rewrite_behind_a_checkpoint_is_detected(
    signed: tuple[list[AuditEvent], list[Checkpoint]], keys: dict
) -> None:
    events, cps = signed
    edited = [*events[:2], dataclasses.replace(events[2], payload={"i": 2, "note": "approved by nobody"}), *events[3:]]
    rewritten = _rehash_from(edited, 2)
    # Without checkpoints the rewrite is internally consistent: this is why
    # checkpoints exist.
    assert verify_chain(rewritten).events_checked == 10
    with pytest.raises(AuditChainError, match="event seq 5 differs from the signed checkpoint at seq 5: "
                                              r"history from the start up to seq 5 was rewritten \(hashes"):
        verify_chain(rewritten, cps, keys)


def test_rewrite_after_a_checkpoint_is_narrowed(signed: tuple[list[AuditEvent], list[Checkpoint]], keys: dict) -> None:
    events, cps = signed
    edited = [*events[:7], dataclasses.replace(events[7], payload={"i": 7}), *events[8:]]
    with pytest.raises(AuditChainError, match="seq 10 .*history after seq 5 up to seq 10 was rewritten"):
        verify_chain(_rehash_from(edited, 7), cps, keys)


def test_truncation_past_a_checkpoint_is_detected(
    signed: tuple[list[AuditEvent], list[Checkpoint]], keys: dict
) -> None:
    events, cps = signed
    with pytest.raises(AuditChainError, match=r"^signed checkpoint at seq 10 but the chain ends at seq 7: events were "
                                              r"deleted from the end \(truncated\)$"):
        verify_chain(events[:7], cps, keys)


def test_checkpoint_signed_by_a_foreign_key_is_refused(
    tmp_path: Path, signed: tuple[list[AuditEvent], list[Checkpoint]], keys: dict
) -> None:
    events, _ = signed
    rewritten = _rehash_from([*events[:2], dataclasses.replace(events[2], payload={}), *events[3:]], 2)
    forger = EngineKeyring.load_or_create(tmp_path / "forger")
    forged = sign_checkpoint(forger, rewritten[9], NOW)
    with pytest.raises(AuditChainError, match="checkpoint at seq 10 is forged or corrupt: unknown kid"):
        verify_chain(rewritten, [forged], keys)


def test_checkpoint_fields_edited_next_to_a_valid_token_are_refused(
    signed: tuple[list[AuditEvent], list[Checkpoint]], keys: dict
) -> None:
    events, cps = signed
    rewritten = _rehash_from([*events[:2], dataclasses.replace(events[2], payload={}), *events[3:]], 2)
    moved = dataclasses.replace(cps[1], head_hash=rewritten[9].hash)
    with pytest.raises(AuditChainError, match="stored fields differ from what the engine signed"):
        verify_chain(rewritten, [moved], keys)


def test_checkpoint_token_edited_is_refused(signed: tuple[list[AuditEvent], list[Checkpoint]], keys: dict) -> None:
    events, cps = signed
    header, _, sig = cps[0].token.split(".")
    payload = cps[1].token.split(".")[1]
    with pytest.raises(AuditChainError, match="checkpoint at seq 5 is forged or corrupt: signature does not verify"):
        verify_chain(events, [dataclasses.replace(cps[0], token=f"{header}.{payload}.{sig}")], keys)


def test_warrant_presented_as_checkpoint_is_refused(
    signed: tuple[list[AuditEvent], list[Checkpoint]], keys: dict, warrant: object
) -> None:
    events, cps = signed
    token = warrant.token  # type: ignore[attr-defined]
    with pytest.raises(AuditChainError, match="token type 'hitlgate-warrant\\+jwt' is not"):
        verify_chain(events, [dataclasses.replace(cps[0], token=token)], keys)


def test_checkpoints_without_keys_fail_closed(signed: tuple[list[AuditEvent], list[Checkpoint]]) -> None:
    events, cps = signed
    with pytest.raises(AuditChainError, match="without the engine's public keys"):
        verify_chain(events, cps)


def test_checkpoints_survive_key_rotation_via_history(
    keyring: EngineKeyring, signed: tuple[list[AuditEvent], list[Checkpoint]]
) -> None:
    events, cps = signed
    keyring.rotate(now=NOW)
    much_later = NOW + timedelta(days=30)
    with pytest.raises(AuditChainError, match="unknown kid"):
        verify_chain(events, cps, keyring.public_keys(much_later))
    history = EngineKeyring.from_jwks(keyring.jwks(much_later, include_expired=True))
    assert verify_chain(events, cps, history).checkpoints_verified == 2


def test_export_round_trip_and_offline_tamper(signed: tuple[list[AuditEvent], list[Checkpoint]], keys: dict) -> None:
    events, cps = signed
    buf = io.StringIO()
    assert export_jsonl(events, buf, cps) == 10
    exported = read_export(io.StringIO(buf.getvalue()))
    assert exported.events == events and exported.checkpoints == cps
    assert read_jsonl(io.StringIO(buf.getvalue())) == events
    assert verify_chain(exported.events, exported.checkpoints, keys).checkpoints_verified == 2

    lines = buf.getvalue().splitlines()
    doc = json.loads(lines[5])
    doc["payload"]["note"] = "edited in the export"
    lines[5] = json.dumps(doc)
    tampered = read_export(io.StringIO("\n".join(lines)))
    with pytest.raises(AuditChainError, match="event seq 6 was modified"):
        verify_chain(tampered.events, tampered.checkpoints, keys)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "line 2 is malformed"),
        ('{"record": "event", "seq": 1}', "line 2 is malformed"),
        ('{"record": "nonsense"}', r"^export line 2 is malformed: unknown record type 'nonsense'$"),
        ("[1, 2]", r"^export line 2 is malformed: not a JSON object$"),
        ('{"record": "event", "x": NaN}', "NaN is not allowed"),
    ],
)
def test_malformed_export_lines_are_named(line: str, reason: str) -> None:
    buf = io.StringIO()
    export_jsonl(_chain(1), buf)
    with pytest.raises(AuditChainError, match=reason):
        read_export(io.StringIO(buf.getvalue() + line + "\n"))


def test_export_lines_have_sorted_keys_so_exports_of_one_chain_are_byte_identical(
    signed: tuple[list[AuditEvent], list[Checkpoint]],
) -> None:
    events, cps = signed
    buf = io.StringIO()
    export_jsonl(events, buf, cps)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 12
    for line in lines:
        assert line == json.dumps(json.loads(line), sort_keys=True)


def test_export_that_is_not_utf8_is_refused_with_a_line_hint() -> None:
    # A binary file handed to ``audit verify --file`` is refused as an
    # audit-chain error naming roughly where, never a UnicodeDecodeError.
    raw = io.BytesIO(b"\xff\xfe not text\n")
    with pytest.raises(AuditChainError, match=r"^export is not UTF-8 text \(near line 1\)$"):
        read_export(io.TextIOWrapper(raw, encoding="utf-8"))


def test_events_enforce_their_shape() -> None:
    e = _chain(1)[0]
    with pytest.raises(ValidationError, match="kind"):
        dataclasses.replace(e, kind="made_up")
    with pytest.raises(ValidationError, match="at:"):
        dataclasses.replace(e, at=e.at.replace(tzinfo=None))
    with pytest.raises(ValidationError, match="seq"):
        dataclasses.replace(e, seq=0)
    with pytest.raises(ValidationError, match="payload"):
        next_event(None, kind="proposed", request_id="r", payload={"x": float("nan")}, at=NOW)
    payload = {"x": [1]}
    frozen_copy = next_event(None, kind="proposed", request_id="r", payload=payload, at=NOW)
    payload["x"].append(2)
    assert frozen_copy.payload == {"x": [1]}
    verify_chain([frozen_copy])

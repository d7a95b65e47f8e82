"""Threat: one audit event is edited and only its own hash is recomputed.

Each event's hash covers its own content, so recomputing it makes the
edited event self-consistent. What exposes the edit is the next event's
``prev_hash``, which still names the old hash: :func:`verify_chain` must
check that link, for every event including the first (whose link is the
genesis hash), and with or without checkpoints.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from hitlgate.engine.ledger.audit import GENESIS_HASH, AuditEvent, next_event, verify_chain
from hitlgate.errors import AuditChainError

from .conftest import NOW


def _chain(n: int = 6) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    prev = None
    for i in range(n):
        prev = next_event(prev, kind="approved", request_id="req-1", payload={"approver": f"a{i}"},
                          at=NOW + timedelta(seconds=i))
        events.append(prev)
    return events


def _edit_and_rehash_only(event: AuditEvent, **payload: object) -> AuditEvent:
    edited = dataclasses.replace(event, payload={**event.payload, **payload})
    return dataclasses.replace(edited, hash=edited.expected_hash())


@pytest.mark.parametrize("index", [0, 2, 4])
def test_edited_event_with_only_its_own_hash_recomputed_breaks_the_next_link(index: int) -> None:
    events = _chain()
    events[index] = _edit_and_rehash_only(events[index], approver="mallory")
    assert events[index].expected_hash() == events[index].hash
    seq = index + 1
    with pytest.raises(AuditChainError, match=f"event seq {seq + 1} does not link to seq {seq} "
                                              r"\(prev_hash mismatch\): an event was inserted, deleted or reordered"):
        verify_chain(events)


def test_first_event_must_link_to_the_genesis_hash() -> None:
    events = _chain(3)
    other = next_event(None, kind="approved", request_id="req-0", payload={}, at=NOW)
    first = dataclasses.replace(events[0], prev_hash=other.hash)
    first = dataclasses.replace(first, hash=first.expected_hash())
    assert first.prev_hash != GENESIS_HASH
    with pytest.raises(AuditChainError, match=r"event seq 1 does not link to seq 0 \(prev_hash mismatch\)"):
        verify_chain([first])


def test_last_event_edited_and_rehashed_is_caught_by_its_own_link() -> None:
    # The last event has no successor; editing its prev_hash to match an
    # edited predecessor is what the attacker would try next.
    events = _chain(4)
    events[2] = _edit_and_rehash_only(events[2], approver="mallory")
    tail = dataclasses.replace(events[3], prev_hash="sha256:" + "1" * 64)
    events[3] = dataclasses.replace(tail, hash=tail.expected_hash())
    with pytest.raises(AuditChainError, match="event seq 4 does not link to seq 3"):
        verify_chain(events)


def test_intact_chain_links_every_event() -> None:
    events = _chain()
    assert [e.prev_hash for e in events] == [GENESIS_HASH, *[e.hash for e in events[:-1]]]
    report = verify_chain(events)
    assert (report.events_checked, report.last_seq, report.head_hash) == (6, 6, events[-1].hash)

"""``verify_chain`` streams: checkpoints are merged with the events by seq, never all held.

Issue 9's store at size (10^7 events, a signed checkpoint every few events)
needs ``audit verify`` in constant memory. The walk reads the stored and
anchored checkpoints one seq at a time, next to the events; an anchor file
a few lines out of order (concurrent writers append after their commits)
is merged through a bounded reorder window, and one further out of order is
refused by the stream so that the caller can pass it as a sorted list. What
the walk reports and the order of its findings stay as before: a forged or
contradicting checkpoint anywhere is named before a bad event, and anchored
checkpoints missing from the store are added to a bad event's message.
"""

from __future__ import annotations

import dataclasses
import re
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.engine.ledger import audit
from hitlgate.engine.ledger.audit import (
    AuditEvent,
    Checkpoint,
    CheckpointOrderError,
    in_seq_order,
    next_event,
    sign_checkpoint,
    verify_chain,
)
from hitlgate.errors import AuditChainError

from .conftest import NOW, proposed_chain

_chain = proposed_chain


@pytest.fixture
def keys(keyring: EngineKeyring) -> dict[str, Ed25519PublicKey]:
    return EngineKeyring.from_jwks(keyring.jwks(NOW))


def _signed(keyring: EngineKeyring, events: list[AuditEvent], every: int = 1) -> list[Checkpoint]:
    return [sign_checkpoint(keyring, e, NOW) for e in events if e.seq % every == 0]


@pytest.fixture(scope="module")
def long_chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[AuditEvent], list[Checkpoint],
                                                                   dict[str, Ed25519PublicKey]]:
    """800 events, each with a signed checkpoint (made once: signing is most of the cost)."""
    keyring = EngineKeyring(tmp_path_factory.mktemp("keys") / "keys")
    events = _chain(800)
    return events, _signed(keyring, events), EngineKeyring.from_jwks(keyring.jwks(NOW))


def _peak(events: list[AuditEvent], cps: list[Checkpoint], keys: dict[str, Ed25519PublicKey]) -> int:
    """Peak bytes allocated while verifying, every input a generator over prepared objects."""
    tracemalloc.start()
    try:
        report = verify_chain(iter(events), iter(cps), keys, anchors=iter(cps))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.last_seq, report.checkpoints_verified, report.anchored) == (len(events), len(cps), len(cps))
    return peak


def test_memory_does_not_grow_with_the_checkpoints(
    long_chain: tuple[list[AuditEvent], list[Checkpoint], dict[str, Ed25519PublicKey]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit, "ORDER_WINDOW", 8)
    events, cps, keys = long_chain
    small = _peak(events[:100], cps[:100], keys)
    large = _peak(events, cps, keys)
    # Holding every checkpoint's seq and hash (as the walk once did) costs well over 100 bytes each: 8x the
    # checkpoints would add more than 70 KB.
    assert large < small + 40 * 1024, (small, large)


def test_anchor_lines_a_few_out_of_order_stream(keyring: EngineKeyring, keys: dict[str, Ed25519PublicKey],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "ORDER_WINDOW", 4)
    events = _chain(40)
    cps = _signed(keyring, events, every=2)
    # Neighbouring pairs swapped, as two writers appending after their commits leave them.
    swapped = [cps[i ^ 1] for i in range(len(cps))]
    report = verify_chain(iter(events), iter(cps), keys, anchors=iter(swapped))
    assert (report.anchored, report.anchored_seq, report.covered_seq) == (20, 40, 40)


def test_a_stream_further_out_of_order_is_refused_and_a_list_is_sorted(
    keyring: EngineKeyring, keys: dict[str, Ed25519PublicKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "ORDER_WINDOW", 4)
    events = _chain(40)
    cps = _signed(keyring, events, every=2)
    backwards = cps[::-1]
    with pytest.raises(CheckpointOrderError, match=re.escape(
            "checkpoint at seq 30 comes after the one at seq 32, further out of order than 4 lines")):
        verify_chain(iter(events), iter(cps), keys, anchors=iter(backwards))
    report = verify_chain(iter(events), iter(cps), keys, anchors=backwards)
    assert (report.anchored, report.anchored_seq) == (20, 40)
    assert [cp.seq for cp in in_seq_order(tuple(backwards))] == list(range(2, 41, 2))


def test_in_seq_order_gives_a_nearly_sorted_stream_sorted() -> None:
    def cps(seqs: list[int]) -> Iterator[Checkpoint]:
        for s in seqs:
            yield Checkpoint(seq=s, head_hash="sha256:" + "0" * 64, at=NOW, token="t", kid="k")

    assert [cp.seq for cp in in_seq_order(cps([2, 1, 4, 3, 3, 6, 5]), 2)] == [1, 2, 3, 3, 4, 5, 6]
    # Window 1: the second line may not come before the one given out when the third arrived.
    with pytest.raises(CheckpointOrderError, match=re.escape("checkpoint at seq 1 comes after the one at seq 2")):
        list(in_seq_order(cps([2, 3, 1]), 1))
    # A seq equal to the last one given out is still in order (its group is still being read)...
    assert [cp.seq for cp in in_seq_order(cps([2, 3, 2, 2]), 1)] == [2, 2, 2, 3]
    # ...and many copies of one seq never overflow the window.
    assert [cp.seq for cp in in_seq_order(cps([1] + [2] * 50 + [3]), 2)] == [1] + [2] * 50 + [3]


def test_many_exact_copies_of_one_anchor_line_verify_once(
    keyring: EngineKeyring, keys: dict[str, Ed25519PublicKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "ORDER_WINDOW", 2)
    events = _chain(10)
    cps = _signed(keyring, events, every=5)
    copies = [cps[0]] * 40 + [cps[1]] * 40
    report = verify_chain(iter(events), iter(cps), keys, anchors=iter(copies))
    assert (report.checkpoints_verified, report.anchored, report.anchored_seq) == (2, 2, 10)
    # A rewrite behind them is still named.
    rewritten = [*events[:6], *_rehashed(events[6:], events[5], {"i": -1})]
    with pytest.raises(AuditChainError, match="^event seq 10 differs from the signed checkpoint at seq 10"):
        verify_chain(iter(rewritten), iter(cps), keys, anchors=iter(copies))


def test_an_anchor_line_with_the_stored_token_but_other_fields_is_still_refused(
    keyring: EngineKeyring, keys: dict[str, Ed25519PublicKey]
) -> None:
    events = _chain(10)
    cps = _signed(keyring, events, every=5)
    # An exact copy is verified once and counted once...
    report = verify_chain(events, cps, keys, anchors=list(cps))
    assert (report.checkpoints_verified, report.anchored) == (2, 2)
    # ...but a copy of the stored token beside other fields is checked as itself.
    edited = dataclasses.replace(cps[1], at=NOW + timedelta(hours=1))
    with pytest.raises(AuditChainError, match=re.escape(
            "anchored checkpoint at seq 10: stored fields differ from what the engine signed")):
        verify_chain(events, cps, keys, anchors=[cps[0], edited])


def test_a_forged_checkpoint_later_is_named_before_an_earlier_bad_event(
    keyring: EngineKeyring, keys: dict[str, Ed25519PublicKey]
) -> None:
    events = _chain(20)
    cps = _signed(keyring, events, every=5)
    forged = dataclasses.replace(cps[3], token=cps[3].token[:-4] + ("AAAA" if not cps[3].token.endswith("AAAA")
                                                                       else "BBBB"))
    edited = [*events[:2], dataclasses.replace(events[2], payload={"i": 99}, hash=events[2].hash), *events[3:]]
    with pytest.raises(AuditChainError, match="^checkpoint at seq 20 is forged or corrupt"):
        verify_chain(iter(edited), iter([*cps[:3], forged]), keys)


def test_anchored_checkpoints_missing_from_the_store_are_added_to_a_bad_event(
    keyring: EngineKeyring, keys: dict[str, Ed25519PublicKey]
) -> None:
    events = _chain(20)
    cps = _signed(keyring, events, every=5)
    edited = [*events[:2], dataclasses.replace(events[2], payload={"i": 99}, hash=events[2].hash), *events[3:]]
    with pytest.raises(AuditChainError) as caught:
        verify_chain(iter(edited), iter(cps[:2]), keys, anchors=iter(cps))
    assert str(caught.value) == (
        "event seq 3 was modified: its content does not match its hash; also, 2 signed checkpoint(s) held by an "
        "anchor are missing from the store (seq 15, 20): checkpoints were deleted"
    )
    # A start that no anchored checkpoint signs, or that it signs with another hash, is said alone, after every
    # checkpoint was verified.
    with pytest.raises(AuditChainError) as caught:
        verify_chain(iter(edited[5:]), iter(cps[:2]), keys, anchors=iter(cps), start=(4, events[3].hash))
    assert str(caught.value) == (
        "incremental verify starts at seq 4, but no anchored checkpoint signs that seq: run a full verify (--full)"
    )
    with pytest.raises(AuditChainError) as caught:
        verify_chain(iter(edited[5:]), iter(cps[:2]), keys, anchors=iter(cps), start=(5, events[3].hash))
    assert str(caught.value) == (
        "incremental verify starts at seq 5, but the anchored checkpoint there signs another hash: "
        "run a full verify (--full)"
    )


def test_an_incremental_walk_holds_the_events_after_its_start_to_their_checkpoints(
    keyring: EngineKeyring, keys: dict[str, Ed25519PublicKey]
) -> None:
    events = _chain(20)
    cps = _signed(keyring, events, every=5)
    start = (5, events[4].hash)
    assert verify_chain(iter(events[5:]), iter(cps), keys, anchors=iter(cps), start=start).covered_seq == 20
    # A writer with database access rewrites seq 12 and recomputes every hash after it.
    rewritten = [*events[:11], *_rehashed(events[11:], events[10], {"i": -1})]
    with pytest.raises(AuditChainError) as caught:
        verify_chain(iter(rewritten[5:]), iter(cps), keys, anchors=iter(cps), start=start)
    assert str(caught.value) == (
        "event seq 15 differs from the signed checkpoint at seq 15: history after seq 10 up to seq 15 was rewritten "
        "(hashes recomputed)"
    )
    # The events after the start end before the last checkpoint: truncated.
    with pytest.raises(AuditChainError) as caught:
        verify_chain(iter(events[5:17]), iter(cps), keys, anchors=iter(cps), start=start)
    assert str(caught.value) == (
        "signed checkpoint at seq 20 but the chain ends at seq 17: events were deleted from the end (truncated)"
    )


def _rehashed(tail: list[AuditEvent], before: AuditEvent, first_payload: dict[str, int]) -> list[AuditEvent]:
    out: list[AuditEvent] = []
    prev = before
    for n, e in enumerate(tail):
        prev = next_event(prev, kind=e.kind, request_id=e.request_id, payload=first_payload if n == 0 else e.payload,
                          at=e.at)
        out.append(prev)
    return out


def test_two_validly_signed_checkpoints_that_disagree_are_a_fork(
    keyring: EngineKeyring, keys: dict[str, Ed25519PublicKey]
) -> None:
    events = _chain(10)
    cps = _signed(keyring, events, every=5)
    other = _rehashed(events[2:], events[1], {"i": -1})
    fork = sign_checkpoint(keyring, other[2], NOW)
    assert (fork.seq, fork.head_hash != cps[0].head_hash) == (5, True)
    with pytest.raises(AuditChainError) as caught:
        verify_chain(iter(events), iter(cps), keys, anchors=iter([fork, cps[1]]))
    assert str(caught.value) == "two validly signed checkpoints at seq 5 disagree: the chain forked"


@pytest.mark.parametrize(("length", "named"), [
    (22, "10 signed checkpoint(s) held by an anchor are missing from the store "
         "(seq 4, 6, 8, 10, 12, 14, 16, 18, 20, 22): checkpoints were deleted"),
    (24, "11 signed checkpoint(s) held by an anchor are missing from the store "
         "(seq 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, ...): checkpoints were deleted"),
])
def test_up_to_ten_missing_are_named_and_more_are_counted(
    keyring: EngineKeyring, keys: dict[str, Ed25519PublicKey], length: int, named: str
) -> None:
    events = _chain(length)
    cps = _signed(keyring, events, every=2)
    with pytest.raises(AuditChainError) as caught:
        verify_chain(iter(events), iter(cps[:1]), keys, anchors=iter(cps))
    assert str(caught.value) == named

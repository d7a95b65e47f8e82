"""The walk's hash shortcut must hash exactly the bytes the chain was written with.

``AuditEvent.expected_hash`` assembles the RFC 8785 body around the payload
it canonicalised once; if it ever spelled a byte differently from
:func:`compute_hash` (key order, escaping, numbers), every stored chain would
fail to verify or, worse, a changed event could pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hitlgate.engine.ledger.audit import GENESIS_HASH, KINDS, AuditEvent, compute_hash

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False, width=32),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@given(
    seq=st.integers(1, 2**53 - 1),
    micros=st.integers(0, 10**12),
    kind=st.sampled_from(sorted(KINDS)),
    request_id=st.none() | st.text(min_size=1, max_size=12),
    payload=st.dictionaries(st.text(max_size=6), _json, max_size=4),
)
def test_expected_hash_equals_compute_hash(
    seq: int, micros: int, kind: str, request_id: str | None, payload: dict[str, object]
) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    digest = compute_hash(seq=seq, at=at, kind=kind, request_id=request_id, payload=payload, prev_hash=GENESIS_HASH)
    ev = AuditEvent(seq, at, kind, request_id, payload, GENESIS_HASH, digest)
    assert ev.expected_hash() == digest
    changed = AuditEvent(seq, at, kind, request_id, {**payload, "x": 1}, GENESIS_HASH, digest)
    assert changed.expected_hash() != digest

"""The tamper-evident audit chain (storage-agnostic).

Every event is hash-chained to the one before it::

    hash = "sha256:" + hex(SHA-256(RFC 8785 {seq, at, kind, request_id, payload, prev_hash}))

``seq`` starts at 1 and increases by exactly one; the first event's
``prev_hash`` is :data:`GENESIS_HASH`; ``at`` is hashed in the one spelling
``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Editing an event changes its hash; deleting,
inserting or reordering events breaks the ``seq`` sequence or the
``prev_hash`` links. An attacker with write access to the store can still
recompute every hash after an edit, so the engine periodically signs a
:class:`Checkpoint` (a compact JWS by the engine key over ``{seq, hash, at}``):
a rewrite behind a checkpoint, or a truncation past one, no longer matches
it, and forging a checkpoint needs the engine's private key. Checkpoints
stored in the same database can be deleted along with the rewrite, so the
engine also keeps them in an anchor file outside it
(:mod:`hitlgate.engine.ledger.anchor`); :func:`verify_chain` takes those as
``anchors`` and reports any that the store lost.

:func:`verify_chain` raises :class:`~hitlgate.errors.AuditChainError` naming
the first bad event and why; when the chain is good it returns a
:class:`ChainReport`. :func:`export_jsonl` and :func:`read_export` move a
chain and its checkpoints to a file that can be checked offline with only
the engine's JWKS. That JWKS must come from a trusted source, never from the
export itself, or a forger could ship their own key with the forgery.

Stores keep events exactly as :meth:`AuditEvent.to_dict` spells them (or
re-attach UTC to timestamps read back), since the hash covers the spelling.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, NoReturn

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hitlgate.engine._canonical import dumps as canonical_dumps
from hitlgate.engine._canonical import dumps_with_copy as canonical_with_copy
from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.engine.keys.warrants import JWSRefused, verify_compact_jws
from hitlgate.errors import AuditChainError, InputError, ValidationError

GENESIS_HASH = "sha256:" + "0" * 64
CHECKPOINT_TYP = "hitlgate-audit-checkpoint+jwt"
CHECKPOINT_VERSION = 1

#: Event kinds, in roughly the order a request meets them.
KINDS: frozenset[str] = frozenset(
    {
        "proposed",
        "decided",
        "approved",
        "rejected",
        "granted",
        "denied",
        "warrant_issued",
        "warrant_refused",
        "consumed",
        "executed",
        "execution_failed",
        "execution_unknown",
        "expired",
        "revoked",
        "cancelled",
        "key_rotated",
        "checkpoint",
        "anchor_reinitialized",
        "keyring_replaced",
        # API keys of the HTTP service (hitlgate.engine.keys.apikeys).
        "api_key_created",
        "api_key_revoked",
        # Passkeys of approvers (hitlgate.engine.approve.passkeys).
        "passkey_enrolment_created",
        "passkey_enrolment_used",
        "passkey_enrolled",
        "passkey_revoked",
        # Reminders, escalations and expiry warnings (hitlgate.engine.tick).
        "approval_reminder_sent",
        "approval_escalated",
        "approval_expiring_warned",
    }
)

_HASH_RE = re.compile(r"sha256:[0-9a-f]{64}")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_EVENT_FIELDS = frozenset({"seq", "at", "kind", "request_id", "payload", "prev_hash", "hash"})
_CHECKPOINT_FIELDS = frozenset({"seq", "head_hash", "at", "token", "kid"})


def format_time(at: datetime) -> str:
    """The one spelling of an audit time: RFC 3339 UTC with microseconds."""
    return at.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: Any) -> datetime:
    """Parse :func:`format_time` output strictly (``ValueError`` otherwise)."""
    if not isinstance(text, str) or _TIME_RE.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not an RFC 3339 UTC time with microseconds")
    # The pattern above pins the spelling; fromisoformat reads it (Z as UTC)
    # at a tenth of strptime's cost.
    return datetime.fromisoformat(text)


def _is_utc(at: Any) -> bool:
    return isinstance(at, datetime) and at.tzinfo is not None and at.utcoffset() == timedelta(0)


def compute_hash(
    *, seq: int, at: datetime, kind: str, request_id: str | None, payload: Mapping[str, Any], prev_hash: str
) -> str:
    """The chain hash of one event's content (see module docstring)."""
    body: dict[str, Any] = {
        "seq": seq,
        "at": format_time(at),
        "kind": kind,
        "request_id": request_id,
        "payload": dict(payload),
        "prev_hash": prev_hash,
    }
    return "sha256:" + hashlib.sha256(canonical_dumps(body)).hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    """One link of the chain.

    The constructor checks shapes (UTC time, known kind, hash formats, JSON
    payload), not that ``hash`` matches the content: a stored event may have
    been tampered with, and :func:`verify_chain` must be able to hold it to
    report on it.
    """

    seq: int
    at: datetime
    kind: str
    request_id: str | None
    payload: Mapping[str, Any] = field(hash=False)
    prev_hash: str
    hash: str
    _canonical_payload: bytes = field(init=False, repr=False, compare=False, hash=False, default=b"")

    def __post_init__(self) -> None:
        what = f"audit event {self.seq!r}"
        if type(self.seq) is not int or self.seq < 1:
            raise ValidationError(what, ["seq: must be an integer >= 1"])
        if not _is_utc(self.at):
            raise ValidationError(what, ["at: must be a timezone-aware UTC datetime"])
        if self.kind not in KINDS:
            raise ValidationError(what, [f"kind: {self.kind!r} is not one of {sorted(KINDS)}"])
        if self.request_id is not None and (not isinstance(self.request_id, str) or not self.request_id):
            raise ValidationError(what, ["request_id: must be a non-empty string or null"])
        if not isinstance(self.payload, Mapping):
            raise ValidationError(what, ["payload: must be an object"])
        for name in ("prev_hash", "hash"):
            value = getattr(self, name)
            if not isinstance(value, str) or _HASH_RE.fullmatch(value) is None:
                raise ValidationError(what, [f"{name}: must be sha256: followed by 64 lowercase hex digits"])
        # A private deep copy through JSON: the payload must be JSON anyway,
        # and the caller mutating its dict later must not change the event.
        try:
            canonical, copy = canonical_with_copy(dict(self.payload))
            object.__setattr__(self, "payload", copy)
        except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
            # RecursionError: nested deeper than the interpreter's stack allows here (a stored payload
            # edited around the engine; the engine's own payloads are shallow).
            raise ValidationError(what, [f"payload: not canonical JSON: {exc}"]) from None
        # Kept for expected_hash: canonicalising the payload is most of a
        # hash's cost, and verifying a long chain would otherwise do it twice.
        object.__setattr__(self, "_canonical_payload", canonical)

    def expected_hash(self) -> str:
        """The hash this event's content should have (the same bytes :func:`compute_hash` hashes)."""
        # RFC 8785 orders the keys by UTF-16 code units: at, kind, payload, prev_hash, request_id, seq.
        body = b"".join((
            b'{"at":', canonical_dumps(format_time(self.at)),
            b',"kind":', canonical_dumps(self.kind),
            b',"payload":', self._canonical_payload,
            b',"prev_hash":', canonical_dumps(self.prev_hash),
            b',"request_id":', canonical_dumps(self.request_id),
            b',"seq":', canonical_dumps(self.seq),
            b"}",
        ))
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the spelling the hash covers)."""
        return {
            "seq": self.seq,
            "at": format_time(self.at),
            "kind": self.kind,
            "request_id": self.request_id,
            "payload": dict(self.payload),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, doc: Any) -> AuditEvent:
        """Parse the JSON form strictly (the hash is checked by :func:`verify_chain`)."""
        if not isinstance(doc, Mapping) or set(doc) != _EVENT_FIELDS:
            raise ValidationError(
                "audit event", [f"(document): must be an object with exactly {sorted(_EVENT_FIELDS)}"]
            )
        try:
            at = parse_time(doc["at"])
        except ValueError as exc:
            raise ValidationError("audit event", [f"at: {exc}"]) from exc
        return cls(doc["seq"], at, doc["kind"], doc["request_id"], doc["payload"], doc["prev_hash"], doc["hash"])


def next_event(
    prev: AuditEvent | None,
    *,
    kind: str,
    request_id: str | None,
    payload: Mapping[str, Any],
    at: datetime,
) -> AuditEvent:
    """The event that follows ``prev`` (or the first event when ``prev`` is None)."""
    if prev is None:
        return event_after(0, GENESIS_HASH, kind=kind, request_id=request_id, payload=payload, at=at)
    return event_after(prev.seq, prev.hash, kind=kind, request_id=request_id, payload=payload, at=at)


def event_after(
    prev_seq: int,
    prev_hash: str,
    *,
    kind: str,
    request_id: str | None,
    payload: Mapping[str, Any],
    at: datetime,
) -> AuditEvent:
    """The event that follows the chain head ``(prev_seq, prev_hash)``; ``(0, GENESIS_HASH)`` for the first."""
    if not _is_utc(at):
        raise InputError("audit event time must be a timezone-aware UTC datetime")
    # Built through the constructor (which checks the shapes and
    # canonicalises the payload once), with a placeholder hash that is then
    # replaced by the one over that canonical payload: the same bytes
    # compute_hash hashes, without canonicalising the payload a second time.
    try:
        body = dict(payload)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"audit event {prev_seq + 1}", [f"payload: not canonical JSON: {exc}"]) from exc
    ev = AuditEvent(prev_seq + 1, at, kind, request_id, body, prev_hash, GENESIS_HASH)
    object.__setattr__(ev, "hash", ev.expected_hash())
    return ev


# --------------------------------------------------------------------------
# Checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """An engine-signed statement that the chain's event ``seq`` has ``head_hash``."""

    seq: int
    head_hash: str
    at: datetime
    token: str
    kid: str

    def __post_init__(self) -> None:
        if type(self.seq) is not int or self.seq < 1:
            raise ValidationError("audit checkpoint", ["seq: must be an integer >= 1"])
        if not isinstance(self.head_hash, str) or _HASH_RE.fullmatch(self.head_hash) is None:
            raise ValidationError("audit checkpoint", ["head_hash: must be sha256: followed by 64 hex digits"])
        if not _is_utc(self.at):
            raise ValidationError("audit checkpoint", ["at: must be a timezone-aware UTC datetime"])
        if not isinstance(self.token, str) or not isinstance(self.kid, str):
            raise ValidationError("audit checkpoint", ["token, kid: must be strings"])

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "at": format_time(self.at),
            "token": self.token,
            "kid": self.kid,
        }

    @classmethod
    def from_dict(cls, doc: Any) -> Checkpoint:
        """Parse the JSON form strictly (the signature is checked by :func:`verify_chain`)."""
        if not isinstance(doc, Mapping) or set(doc) != _CHECKPOINT_FIELDS:
            raise ValidationError(
                "audit checkpoint", [f"(document): must be an object with exactly {sorted(_CHECKPOINT_FIELDS)}"]
            )
        try:
            at = parse_time(doc["at"])
        except ValueError as exc:
            raise ValidationError("audit checkpoint", [f"at: {exc}"]) from exc
        return cls(doc["seq"], doc["head_hash"], at, doc["token"], doc["kid"])


def sign_checkpoint(keyring: EngineKeyring, head: AuditEvent, now: datetime | None = None) -> Checkpoint:
    """Sign ``{seq, hash, at}`` of ``head`` with the engine's current key."""
    import jwt  # Imported here so that offline verification needs no PyJWT.

    at = now if now is not None else datetime.now(UTC)
    if not _is_utc(at):
        raise InputError("checkpoint time must be a timezone-aware UTC datetime")
    kid, key = keyring.signing_key()
    claims = {"ver": CHECKPOINT_VERSION, "seq": head.seq, "hash": head.hash, "at": format_time(at)}
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": CHECKPOINT_TYP})
    return Checkpoint(seq=head.seq, head_hash=head.hash, at=at, token=token, kid=kid)


def _verify_checkpoint(
    cp: Checkpoint, public_keys: Mapping[str, Ed25519PublicKey], *, label: str
) -> None:
    def key_for(kid: str) -> Ed25519PublicKey:
        key = public_keys.get(kid)
        if key is None:
            raise JWSRefused(f"unknown kid {kid}")
        return key

    where = f"{label} at seq {cp.seq}"
    try:
        kid, claims = verify_compact_jws(cp.token, typ=CHECKPOINT_TYP, key_for=key_for)
    except JWSRefused as exc:
        raise AuditChainError(f"{where} is forged or corrupt: {exc}") from None
    if set(claims) != {"ver", "seq", "hash", "at"} or claims["ver"] != CHECKPOINT_VERSION:
        raise AuditChainError(f"{where}: signed claims are malformed")
    if (claims["seq"], claims["hash"], claims["at"], kid) != (cp.seq, cp.head_hash, format_time(cp.at), cp.kid):
        raise AuditChainError(f"{where}: stored fields differ from what the engine signed")


# --------------------------------------------------------------------------
# Verification


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify_chain` checked on a good chain."""

    events_checked: int
    last_seq: int
    head_hash: str
    checkpoints_verified: int
    #: Distinct checkpoints (by seq and hash) that came from anchors outside the store.
    anchored: int = 0
    #: The highest seq a verified checkpoint matched (0: none); events after it are covered by no signature.
    covered_seq: int = 0
    #: The highest seq an anchored checkpoint (outside the store) matched, and its hash (0, "": none).
    anchored_seq: int = 0
    anchored_hash: str = ""
    #: Where the walk started: 0 from genesis, else the verified checkpoint it continued from.
    start_seq: int = 0

    @property
    def uncovered(self) -> int:
        """How many events at the end no signed checkpoint covers (a truncation there cannot be detected)."""
        return self.last_seq - self.covered_seq


#: How far (in checkpoints) a stream may run out of seq order and still be merged in bounded memory: the
#: engine's anchor file is appended after each commit, so concurrent writers can swap a few neighbouring lines.
ORDER_WINDOW = 1024


class CheckpointOrderError(AuditChainError):
    """A checkpoint stream ran further out of seq order than :data:`ORDER_WINDOW`.

    Not a verdict on the chain: the caller verifies again with that stream
    held in memory (a list, which :func:`verify_chain` sorts).
    """

    code = "checkpoints_out_of_order"


def in_seq_order(cps: Iterable[Checkpoint], window: int | None = None) -> Iterator[Checkpoint]:
    """``cps`` in seq order: a list or tuple is sorted; any other iterable is streamed through a reorder
    buffer of ``window`` (default :data:`ORDER_WINDOW`) checkpoints, so memory stays bounded.

    Raises :class:`CheckpointOrderError` when a checkpoint arrives after one at a greater seq was
    already given out (the stream is further out of order than the window).
    """
    if isinstance(cps, (list, tuple)):
        yield from sorted(cps, key=lambda cp: cp.seq)
        return
    size = ORDER_WINDOW if window is None else window
    heap: list[tuple[int, int, Checkpoint]] = []
    given = 0  # the seq of the last checkpoint given out
    for n, cp in enumerate(cps):
        # A seq equal to the last one given out is still in order (that seq's group is still being read: a
        # reader moves past it only after a greater seq was given out).
        if cp.seq < given:
            raise CheckpointOrderError(
                f"checkpoint at seq {cp.seq} comes after the one at seq {given}, further out of order than "
                f"{size} lines"
            )
        heapq.heappush(heap, (cp.seq, n, cp))
        if len(heap) > size:
            given, _, first = heapq.heappop(heap)
            yield first
    while heap:
        yield heapq.heappop(heap)[2]


class _Peek:
    """An iterator with one item of look-ahead."""

    def __init__(self, items: Iterable[Checkpoint]) -> None:
        self._it = iter(items)
        self.head: Checkpoint | None = next(self._it, None)

    def pop(self) -> None:
        self.head = next(self._it, None)


@dataclass(frozen=True)
class _Signed:
    """One seq's verified checkpoints: the head hash they sign, and whether an anchor holds one."""

    seq: int
    head_hash: str
    anchored: bool


class _SignedCheckpoints:
    """The stored and anchored checkpoints, merged by seq and verified as they are read.

    Holds one seq's checkpoints at a time (and each stream's reorder buffer), never the whole set: what is
    kept of the rest are counts, the highest anchored checkpoint and the first few missing from the store.
    """

    def __init__(self, checkpoints: Iterable[Checkpoint], anchors: Iterable[Checkpoint],
                 public_keys: Mapping[str, Ed25519PublicKey] | None, floor: int) -> None:
        self._store = _Peek(in_seq_order(_from(checkpoints, floor)))
        self._anchor = _Peek(in_seq_order(_from(anchors, floor)))
        self._keys = public_keys
        self.distinct = 0
        self.anchored = 0
        self.anchored_seq = 0
        self.anchored_hash = ""
        self.missing = 0
        self.first_missing: list[int] = []

    def next(self) -> _Signed | None:
        """The next seq that has checkpoints, all of them verified; None after the last."""
        heads = [cp.seq for cp in (self._store.head, self._anchor.head) if cp is not None]
        if not heads:
            return None
        seq = min(heads)
        digest = ""  # pragma: no mutate - None and "" agree: only read for truth until a checkpoint sets it
        held: set[str] = set()
        checked: list[Checkpoint] = []
        for stream, label in ((self._store, "checkpoint"), (self._anchor, "anchored checkpoint")):
            while stream.head is not None and stream.head.seq == seq:
                cp = stream.head
                stream.pop()
                if self._keys is None:
                    raise AuditChainError("checkpoints cannot be verified without the engine's public keys")
                # An identical copy (the anchor's line of a stored checkpoint) has the same signature over
                # the same fields: checking it again could not give another answer.
                if cp not in checked:
                    _verify_checkpoint(cp, self._keys, label=label)
                    # Equivalent if mutated: without it a copy is verified again, with the same answer.
                    checked.append(cp)  # pragma: no mutate
                if digest and digest != cp.head_hash:
                    raise AuditChainError(f"two validly signed checkpoints at seq {seq} disagree: the chain forked")
                digest = cp.head_hash
                held.add(label)
        self.distinct += 1
        anchored = "anchored checkpoint" in held
        if anchored:
            self.anchored += 1
            self.anchored_seq, self.anchored_hash = seq, digest
            if "checkpoint" not in held:
                self.missing += 1
                if len(self.first_missing) < 10:
                    self.first_missing.append(seq)
        # The seq of the last checkpoint read (a stream's head was at seq, so one was): a change that reads none
        # fails here at once instead of returning the same seq forever.
        return _Signed(cp.seq, digest, anchored)

    def drain(self) -> None:
        """Verify the rest (a forged or forked checkpoint is named before a bad event, as a walk verifies
        every checkpoint first) and count what the store is missing."""
        while self.next() is not None:
            pass

    def missing_message(self) -> str:
        seqs = ", ".join(str(seq) for seq in self.first_missing) + (", ..." if self.missing > 10 else "")
        return (
            f"{self.missing} signed checkpoint(s) held by an anchor are missing from the store "
            f"(seq {seqs}): checkpoints were deleted"
        )


def _from(cps: Iterable[Checkpoint], floor: int) -> Iterable[Checkpoint]:
    """The checkpoints at ``floor`` or later; a list stays a list (:func:`in_seq_order` sorts it)."""
    if isinstance(cps, (list, tuple)):
        return [cp for cp in cps if cp.seq >= floor]
    return (cp for cp in cps if cp.seq >= floor)


def verify_chain(
    events: Iterable[AuditEvent],
    checkpoints: Iterable[Checkpoint] = (),
    public_keys: Mapping[str, Ed25519PublicKey] | None = None,
    *,
    anchors: Iterable[Checkpoint] = (),
    start: tuple[int, str] | None = None,
) -> ChainReport:
    """Check the chain; raise :class:`AuditChainError` at the first bad event.

    ``events`` must be in ``seq`` order (as the store returns them). Every
    checkpoint must carry a valid engine signature by a key in
    ``public_keys`` (include retired keys: ``keyring.public_keys(include_expired=True)``),
    and the chain must contain the event it names with the hash it names.

    ``anchors`` are checkpoints kept outside the store (the engine's audit
    anchor file, an auditor's copy): they are verified and applied exactly
    like ``checkpoints`` (duplicates by seq and hash count once; an exact
    copy of a stored checkpoint is not verified twice), and any of them
    missing from ``checkpoints`` is reported as a deleted checkpoint;
    together with a bad event, the bad event is named first. A forged or
    contradicting checkpoint is named before a bad event.

    Every argument may be a generator, and memory does not grow with the
    chain: events are checked one at a time and never held, and the
    checkpoints are merged with them by seq, one seq at a time. A list or
    tuple of checkpoints may be in any order (it is sorted); any other
    iterable must be in seq order give or take :data:`ORDER_WINDOW` lines,
    else :class:`CheckpointOrderError` asks the caller to pass it as a list.

    ``start=(seq, hash)`` verifies incrementally: ``events`` begin at
    ``seq + 1`` and the first must link to ``hash``, which an anchored
    checkpoint at ``seq`` must sign (the caller checks that the stored event
    at ``seq`` still has it). Checkpoints before ``seq`` are skipped, so what
    happened before it (an event edited in place without recomputing
    hashes, a checkpoint row deleted) is left to a walk from genesis.
    """
    floor = 0  # pragma: no mutate - 0 and 1 agree: every seq is 1 or more
    if start is not None:
        floor = start[0]
    signed = _SignedCheckpoints(checkpoints, anchors, public_keys, floor)

    def fail_alone(exc: AuditChainError) -> NoReturn:
        signed.drain()
        raise exc

    def fail(exc: AuditChainError) -> NoReturn:
        """Raise ``exc`` for a bad event, with the anchored checkpoints missing from the store."""
        signed.drain()
        if signed.missing:
            raise AuditChainError(f"{exc}; also, {signed.missing_message()}") from None
        raise exc

    pending = signed.next()
    if start is not None:
        seq, digest = start
        if pending is None or pending.seq != seq or not pending.anchored:
            fail_alone(AuditChainError(
                f"incremental verify starts at seq {seq}, but no anchored checkpoint signs that seq: "
                "run a full verify (--full)", code="verified_mark_unanchored",
            ))
        if pending.head_hash != digest:
            fail_alone(AuditChainError(
                f"incremental verify starts at seq {seq}, but the anchored checkpoint there signs another hash: "
                "run a full verify (--full)", code="verified_mark_unanchored",
            ))
        pending = signed.next()

    expected_seq = 1 if start is None else start[0] + 1
    prev_hash = GENESIS_HASH if start is None else start[1]
    count = 0
    # Equivalent mutant (0 -> None): both mean "no checkpoint matched yet" and are only read by truthiness.
    last_matched = 0 if start is None else start[0]  # pragma: no mutate
    for event in events:
        seq = event.seq
        if seq != expected_seq:
            # Equivalent mutant (< -> <=): seq != expected_seq here, so the two agree.
            if seq < expected_seq:  # pragma: no mutate
                fail(AuditChainError(
                    f"event seq {seq} is out of order, found after seq {expected_seq - 1}: "
                    "an event was inserted, duplicated or reordered"
                ))
            missing = f"seq {expected_seq}" if seq == expected_seq + 1 else f"seq {expected_seq}..{seq - 1}"
            fail(AuditChainError(f"event seq {seq}: {missing} missing: events were deleted or reordered"))
        if event.prev_hash != prev_hash:
            fail(AuditChainError(
                f"event seq {seq} does not link to seq {seq - 1} (prev_hash mismatch): "
                "an event was inserted, deleted or reordered"
            ))
        actual = event.expected_hash()
        if actual != event.hash:
            fail(AuditChainError(f"event seq {seq} was modified: its content does not match its hash"))
        if pending is not None and pending.seq == seq:
            if pending.head_hash != event.hash:
                since = f"after seq {last_matched}" if last_matched else "from the start"
                fail(AuditChainError(
                    f"event seq {seq} differs from the signed checkpoint at seq {seq}: history {since} "
                    f"up to seq {seq} was rewritten (hashes recomputed)"
                ))
            last_matched = seq
            pending = signed.next()
        prev_hash = event.hash
        expected_seq += 1
        count += 1

    last_seq = expected_seq - 1
    if pending is not None:
        fail(AuditChainError(
            f"signed checkpoint at seq {pending.seq} but the chain ends at seq {last_seq}: "
            "events were deleted from the end (truncated)"
        ))
    if signed.missing:
        raise AuditChainError(signed.missing_message())
    return ChainReport(events_checked=count, last_seq=last_seq, head_hash=prev_hash,
                       checkpoints_verified=signed.distinct, covered_seq=last_matched,
                       anchored=signed.anchored, anchored_seq=signed.anchored_seq,
                       anchored_hash=signed.anchored_hash, start_seq=0 if start is None else start[0])


# --------------------------------------------------------------------------
# Offline export


@dataclass(frozen=True)
class AuditExport:
    """The events and checkpoints read from an export file."""

    events: list[AuditEvent]
    checkpoints: list[Checkpoint]


def export_jsonl(events: Iterable[AuditEvent], fh: IO[str], checkpoints: Iterable[Checkpoint] = ()) -> int:
    """Write events (then checkpoints) one JSON object per line; return the event count."""
    count = 0
    for event in events:
        # allow_nan is belt and braces: an event's payload was hashed as
        # RFC 8785 JSON, which has no NaN, so it is not mutated.
        line = json.dumps({"record": "event", **event.to_dict()}, sort_keys=True, allow_nan=False)  # pragma: no mutate
        fh.write(line + "\n")
        count += 1
    for cp in checkpoints:
        fh.write(json.dumps({"record": "checkpoint", **cp.to_dict()}, sort_keys=True) + "\n")
    return count


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def read_export(fh: IO[str]) -> AuditExport:
    """Parse an export; :class:`AuditChainError` names the first unreadable line."""
    events: list[AuditEvent] = []
    cps: list[Checkpoint] = []
    lineno = 0
    try:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line, parse_constant=_refuse_constant)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                record = doc.pop("record", None)
                if record == "event":
                    events.append(AuditEvent.from_dict(doc))
                elif record == "checkpoint":
                    cps.append(Checkpoint.from_dict(doc))
                else:
                    raise ValueError(f"unknown record type {record!r}")
            except (ValueError, ValidationError, RecursionError) as exc:
                raise AuditChainError(f"export line {lineno} is malformed: {exc}") from None
    except UnicodeDecodeError:
        # Raised by the file's decoder while reading, outside the per-line
        # handler above; the reader decodes ahead, so the line is approximate.
        raise AuditChainError(f"export is not UTF-8 text (near line {lineno + 1})") from None
    return AuditExport(events, cps)


def read_jsonl(fh: IO[str]) -> list[AuditEvent]:
    """The events of an export (checkpoints are skipped; see :func:`read_export`)."""
    return read_export(fh).events

"""The approval workflow: the public facade over decisions, votes, warrants and audit.

:class:`Engine` turns a proposal into a stored request, collects signed
approvals and rejections, issues the one warrant of a granted request, and
records every step in the audit chain in the same transaction as the state
change it describes, through the one
:class:`~hitlgate.engine.ledger.auditlog.AuditLog` it shares with its
guards. The request lifecycle is in
:mod:`hitlgate.engine.approve.lifecycle`; quorum matching in
:mod:`hitlgate.engine.approve.quorum`; the executor side in :mod:`hitlgate.engine.approve.guard`.

A vote is accepted only if (in this order): the approver is registered in
the trusted inventory; the signature verifies against that registered key;
the statement is not dated in the future; the request exists and is still
pending and inside its approval window; the statement's action digest
equals the stored request's, and the stored action still hashes to that
digest; the approver is not the requester; the approver has not voted on
this request before (a later vote never replaces an earlier one); and the
approver could fill a place in the quorum. One eligible rejection ends the
request.

The tables are not trusted over the audit chain and the policy. Stored
approvals are re-verified (signature against today's registered key,
request id, action digest, verdict) every time they are counted, so a vote
row written straight into the database never grants anything. A warrant is
signed only for the tier the policy gives *now* for the stored proposal,
with approvals counted against that decision's quorum, and never for a
request whose audit chain already shows a warrant. ``audit verify`` holds
the tables against the chain (:mod:`hitlgate.engine.approve._reconcile`).

Every method takes the time from the injectable ``clock`` (or an explicit
``now=``), so tests can move time without sleeping.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import heapq
import logging
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from hitlgate.engine._safeparse import shorten
from hitlgate.engine._time import Clock, require_utc, utcnow
from hitlgate.engine.approve import lifecycle
from hitlgate.engine.approve._reconcile import Reconciler
from hitlgate.engine.approve.approvals import SignedStatement
from hitlgate.engine.approve.approvers import ApproverRegistry
from hitlgate.engine.approve.guard import Guard
from hitlgate.engine.approve.passkeys import Passkeys, PasskeyUse, passkey_lookup, verify_signature
from hitlgate.engine.approve.quorum import QuorumProgress, assess, can_fill, require_eligible
from hitlgate.engine.config import Config
from hitlgate.engine.decide.decider import Decider
from hitlgate.engine.decide.decision import Decision, Quorum
from hitlgate.engine.decide.inventory import Approver
from hitlgate.engine.decide.proposal import Proposal, action_digest, canonical_json
from hitlgate.engine.keys._demokeys import is_demo_key, require_not_demo_key
from hitlgate.engine.keys.keyring import STATE_FILE as KEYRING_STATE_FILE
from hitlgate.engine.keys.keyring import EngineKeyring, retire_after_for
from hitlgate.engine.keys.warrants import WarrantIssuer, WarrantVerifier
from hitlgate.engine.ledger.anchor import AuditAnchor
from hitlgate.engine.ledger.audit import (
    AuditEvent,
    Checkpoint,
    CheckpointOrderError,
    export_jsonl,
    in_seq_order,
    verify_chain,
)
from hitlgate.engine.ledger.auditlog import (
    ANCHOR_REINIT_KIND,
    DEFAULT_CHECKPOINT_EVERY,
    KEYRING_REPLACED_KIND,
    AuditLog,
)
from hitlgate.engine.ledger.store import (
    ListCursor,
    ListFilters,
    Reads,
    Request,
    Store,
    Transaction,
    Vote,
    WarrantRecord,
)
from hitlgate.errors import (
    ApprovalError,
    AuditChainError,
    HitlgateError,
    IllegalTransition,
    InputError,
    NotFoundError,
    PendingApproval,
    StorageError,
    ValidationError,
)

log = logging.getLogger(__name__)

#: Requests whose rows ``audit verify`` reads in one batch of indexed lookups.
RECONCILE_BATCH = 500

#: A statement dated further than this in the future is refused: it was
#: signed on a wrong clock, or prepared in advance to be used later.
MAX_CLOCK_SKEW = timedelta(minutes=5)

#: A consumed warrant with no recorded outcome this long after its expiry
#: means the executor died mid-action; the request becomes execution_unknown.
OUTCOME_GRACE = timedelta(minutes=10)

#: Who may revoke a request that names no quorum (auto_allow).
REVOKER_ROLE = "security"

#: Why a pending request expires.
WINDOW_CLOSED = "the approval window closed before the quorum was met"

#: The events of a request the warrant path reads: its grant (when the warrant's clock started), and any
#: issue or consumption the tables no longer show.
_ISSUE_EVENTS = ("granted", "warrant_issued", "consumed")


@dataclass(frozen=True)
class AuditReport:
    """What ``audit verify`` checked."""

    events: int
    checkpoints: int
    head_seq: int
    head_hash: str
    #: Distinct checkpoints (by seq and hash) found in anchors outside the database.
    anchored: int = 0
    #: The engine's anchor file (None when it was not consulted).
    anchor: str | None = None
    #: Sequence numbers of ``anchor_reinitialized`` events (an operator started a new anchor).
    anchor_reinits: tuple[int, ...] = ()
    #: Checkpoints signed by engine keys declared lost (``keys reinit``); verify them with the old JWKS.
    unverifiable_checkpoints: int = 0
    #: 0 for a walk from genesis; else the verified checkpoint an incremental verify continued from.
    start_seq: int = 0
    #: Requests whose table rows were held against the chain.
    requests_checked: int = 0

    def describe(self) -> str:
        """One line for people."""
        where = f" ({self.anchor})" if self.anchor else ""
        reinit = ""
        if self.anchor_reinits:
            seqs = ", ".join(f"#{s}" for s in self.anchor_reinits)
            reinit = f"; the anchor was re-initialised at {seqs}, checkpoints before that are not anchored here"
        if self.unverifiable_checkpoints:
            reinit += (f"; {self.unverifiable_checkpoints} checkpoint(s) signed by lost engine keys are not "
                       "verifiable with the local keys (use --jwks with the old keys)")
        since = (f" (incremental: events after #{self.start_seq}, verified before; tables of "
                 f"{self.requests_checked} request(s) with events since; --full walks from genesis)"
                 if self.start_seq else "")
        return (
            f"audit chain OK: {self.events} events{since}, {self.checkpoints} signed checkpoint(s), "
            f"{self.anchored} anchored outside the database{where}, head #{self.head_seq} {self.head_hash}{reinit}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "ok": True,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "anchored": self.anchored,
            "anchor": self.anchor,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "anchor_reinits": list(self.anchor_reinits),
            "unverifiable_checkpoints": self.unverifiable_checkpoints,
            "start_seq": self.start_seq,
            "requests_checked": self.requests_checked,
        }


def _new_request_id() -> str:
    return "req-" + secrets.token_hex(12)



def same_person(approver: str, requester: str) -> bool:
    """Whether an approver name and a requester id name the same person.

    Compared case-insensitively: ``requester.id`` is free text in the
    proposal, so "Alice" proposing must not let "alice" approve.
    """
    return approver.strip().casefold() == requester.strip().casefold()

def _demo_key_hint(exc: ApprovalError, name: str) -> ApprovalError:
    """A signature that does not verify against the starter's demo key, said as the usual first-day cause.

    The approver signed with their new key but the inventory still registers
    the demo key; the refusal says that, not only "does not verify". (Its own
    function: the time-boxed mutation sample mutates ``Engine._authenticate``'s
    checks, not this wording.)
    """
    return ApprovalError(
        f"{exc}; {name}'s registered key is the starter's demo key (derived from a public "
        f"seed): register your own with `hitlgate keys generate --out ~/.hitlgate/{name}.pem` "
        f"and put the public key it prints under approvers.{name}.public_key in your project's inventory "
        "(`hitlgate init DIR` writes a project; the bundled example's inventory is not yours to edit)",
        code="demo_key",
    )


def _require_utf8(reason: str) -> None:
    """An operator's reason must be text the audit chain can hold: UTF-8 (no lone surrogate)."""
    try:
        reason.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"--reason: character {exc.start + 1} ({reason[exc.start]!r}) is not UTF-8 text", code="bad_encoding"
        ) from None


class Engine:
    """The approval workflow on one store, one engine keyring and one decider."""

    def __init__(
        self,
        config: Config,
        decider: Decider | None = None,
        *,
        store: Store | None = None,
        keyring: EngineKeyring | None = None,
        clock: Clock = utcnow,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        anchor: AuditAnchor | None = None,
        demo: bool = False,
    ) -> None:
        """Open the workflow; the store, keyring and audit anchor are created from ``config`` unless given.

        ``demo=True`` is demo mode (``hitlgate demo`` only): votes signed with
        the example inventory's demo keys count. Otherwise they are refused
        (code ``demo_key``), because anyone can derive those keys.
        """
        # Checked before anything is opened (the audit log checks it too).
        if checkpoint_every < 1:
            raise InputError("checkpoint_every must be at least 1")
        self.config = config
        self.demo = demo
        self.clock = clock
        self.decider = decider if decider is not None else Decider.from_config(config)
        self.store = store if store is not None else Store.open(config.state_url)
        # Retired engine keys stay trusted for at least one warrant lifetime,
        # so a rotation never strands a warrant issued just before it.
        # Loaded on first use (read-only commands never touch the keys), and
        # never silently re-created under a database signed by older keys.
        self.keyring = keyring if keyring is not None else EngineKeyring(
            config.key_dir,
            retire_after_seconds=retire_after_for(config.warrant_ttl_seconds),
            # Called on the keyring's first use, after the audit log below exists.
            before_create=lambda key_dir: self.audit_log.refuse_new_keyring(key_dir),
        )
        self.anchor = anchor if anchor is not None else AuditAnchor(config.anchor_path)
        # The one audit log of this engine, shared with every guard it makes.
        self.audit_log = AuditLog(self.store, self.keyring, self.anchor, checkpoint_every=checkpoint_every)
        self.approvers = ApproverRegistry(
            config.data_paths, limits=config.limits, facts=getattr(self.decider.backend, "facts", None)
        )
        self.issuer = WarrantIssuer(
            self.keyring, issuer=config.issuer, audience=config.audience, ttl_seconds=config.warrant_ttl_seconds
        )
        self.verifier = WarrantVerifier(self.keyring, issuer=config.issuer, audience=config.audience)
        #: Approvers' passkeys: enrolment, the credential registry, passkey votes.
        self.passkeys = Passkeys(self)

    @classmethod
    def from_config(cls, config: Config, *, clock: Clock = utcnow) -> Engine:
        """An engine with the decider, store and keys the configuration names."""
        return cls(config, clock=clock)

    def close(self) -> None:
        """Release the store and the policy backend."""
        self.store.close()
        self.decider.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self, now: datetime | None = None) -> datetime:
        """``now`` if given, else the engine clock; always aware UTC."""
        return require_utc(now if now is not None else self.clock(), "now")

    # -- the audit log ----------------------------------------------------

    def append(self, tx: Transaction, kind: str, payload: Mapping[str, Any], now: datetime) -> AuditEvent:
        """Append an audit event that concerns no request (an API key created or revoked) in ``tx``.

        The same checks and checkpointing as every other event
        (:meth:`AuditLog.append`); the caller's state change and this event
        commit together.
        """
        return self.audit_log.append(tx, kind, None, payload, now)

    def require_anchored_head(self, tx: Transaction) -> None:
        """Refuse when the database chain is behind the audit anchor (:meth:`AuditLog.require_anchored_head`)."""
        self.audit_log.require_anchored_head(tx)

    def replace_lost_keyring(self, reason: str, *, now: datetime | None = None) -> str:
        """Start a new engine keyring after the old one was lost for good; return the new kid.

        The operator's explicit, audited act (``hitlgate keys reinit``):
        refused while the key directory holds a keyring. Appends a
        ``keyring_replaced`` event naming the reason and the lost key ids,
        and signs a checkpoint of it with the new key (starting a new audit
        anchor too if the old one was lost with the keys). From then on,
        ``audit verify`` with the local keys reports checkpoints signed by the
        lost keys as not verifiable here; an auditor with a JWKS of the old
        keys verifies them with ``audit verify --jwks``.
        """
        text = reason.strip() if isinstance(reason, str) else ""
        if not text or len(text) > 2000:
            raise InputError("a reason (1 to 2000 characters) is required to replace a lost keyring (--reason TEXT)")
        # Checked before anything is replaced: a reason the audit event cannot hold would otherwise fail
        # only after the new keyring was written.
        _require_utf8(text)
        if (self.keyring.key_dir / KEYRING_STATE_FILE).exists():
            raise InputError(
                f"the engine key directory {self.keyring.key_dir} holds a keyring; nothing to replace "
                "(`hitlgate keys rotate` makes a new key and keeps the old ones)",
                code="keyring_present",
            )
        return self.audit_log.replace_lost_keyring(text, self.now(now))

    @staticmethod
    def _lost_checkpoints(tx: Transaction, rare: Sequence[AuditEvent],
                          keys: Mapping[str, Any]) -> set[tuple[int, str]]:
        """Checkpoints signed by keys a verified ``keyring_replaced`` event declared lost (by seq and kid).

        An event counts only when a checkpoint at its own seq is signed by
        the new key it names, and that key is one this keyring holds or one a
        later counted event declared lost: so someone with database access
        cannot declare the current keys lost to skip their checkpoints. The
        events are read newest first, so keys lost twice (a replacement key
        lost in turn) are followed back through each replacement; every
        earlier event is covered by the chain hash a later counted
        checkpoint signs. Keys this keyring still knows are never skipped.
        """
        lost: set[tuple[int, str]] = set()
        vouched = set(keys)
        for e in sorted(rare, key=lambda ev: ev.seq, reverse=True):
            if e.kind != KEYRING_REPLACED_KIND:
                continue
            new_kid = e.payload.get("kid")
            lost_kids = e.payload.get("lost_kids")
            # Missing or malformed fields (only a database writer makes them): the event declares nothing lost.
            if not isinstance(new_kid, str) or not isinstance(lost_kids, list) or not all(
                    isinstance(k, str) for k in lost_kids):
                continue
            if new_kid not in vouched or tx.checkpoint_kid_at(e.seq) != new_kid:
                continue
            for k in lost_kids:
                if k not in keys:
                    lost.add((e.seq, k))
                    vouched.add(k)
        return lost

    # -- proposals --------------------------------------------------------

    def propose(self, proposal: Proposal | Mapping[str, Any], *, now: datetime | None = None) -> Request:
        """Validate, decide and store a proposal; return the stored request.

        auto_allow requests are granted at once and their warrant is issued
        in the same transaction; deny requests are stored as ``denied``.
        Raises :class:`~hitlgate.errors.ValidationError` for a bad proposal.
        """
        return self.propose_once(proposal, now=now)[0]

    def propose_once(
        self,
        proposal: Proposal | Mapping[str, Any],
        *,
        idempotency: tuple[str, str] | None = None,
        now: datetime | None = None,
    ) -> tuple[Request, bool]:
        """:meth:`propose` at most once per ``idempotency`` (principal, key); return the request and whether it replays.

        A retry with the same principal and key returns the request the first
        attempt stored (``True``), from any process on the same store; the
        same key with a different proposal raises :class:`InputError`
        (``idempotency_conflict``). The key is recorded in the transaction that
        stores the request, and that transaction holds the store's write lock,
        so two concurrent first attempts store one request.
        """
        p = proposal if isinstance(proposal, Proposal) else Proposal.from_dict(proposal)
        proposal_hash = "sha256:" + hashlib.sha256(canonical_json(p.to_dict())).hexdigest()
        if idempotency is not None:
            with self.store.read() as rtx:
                seen = rtx.idempotent_request(*idempotency)
                if seen is not None:
                    return self._replayed(rtx, seen, proposal_hash), True
        decision = self.decider.decide_validated(p)
        at = self.now(now)
        status = lifecycle.initial_state(decision.tier)
        request_id = _new_request_id()
        digest = p.digest
        # A pending request waits for its approval window; an auto-allow is
        # granted now, so its deadline is its warrant's (the clock starts at the grant).
        lifetime = self.warrant_lifetime(decision)
        deadline = at + timedelta(seconds=lifetime if status == lifecycle.GRANTED else decision.ttl_seconds)
        with self.store.write() as tx:
            if idempotency is not None:
                seen = tx.idempotent_request(*idempotency)
                if seen is not None:
                    # A concurrent first attempt committed while this one decided.
                    return self._replayed(tx, seen, proposal_hash), True
            req = tx.insert_request(
                request_id=request_id,
                status=status,
                proposal=p.to_dict(),
                action_digest=digest,
                decision=decision,
                created_at=at,
                expires_at=deadline,
                status_reason=decision.reasons[-1],
            )
            self.audit_log.append(
                tx,
                "proposed",
                req,
                {"action": dict(p.action), "requester": dict(p.document["requester"]),
                 "justification": p.document["justification"], "incident": p.document.get("incident")},
                at,
            )
            self.audit_log.append(
                tx,
                "decided",
                req,
                {
                    "tier": decision.tier,
                    "risk_factors": list(decision.risk_factors),
                    "reasons": list(decision.reasons),
                    "quorum": decision.quorum.to_dict(),
                    "ttl_seconds": decision.ttl_seconds,
                    "warrant_ttl_seconds": lifetime,
                    "policy_revision": decision.policy_revision,
                },
                at,
            )
            if status == lifecycle.GRANTED:
                self.audit_log.append(tx, "granted", req, {"approvals": [], "reason": "auto_allow"}, at)
                self._issue(tx, req, at, decision, expires_at=deadline)
            elif status == lifecycle.DENIED:
                self.audit_log.append(tx, "denied", req, {"subject": "request", "reasons": list(decision.reasons)}, at)
            if idempotency is not None:
                tx.insert_idempotency_key(principal=idempotency[0], key=idempotency[1], request_id=req.id,
                                          proposal_hash=proposal_hash, now=at)
        # As stored by the transaction that just committed (not read again).
        return req, False

    @staticmethod
    def _replayed(tx: Transaction, seen: tuple[str, str], proposal_hash: str) -> Request:
        request_id, stored_hash = seen
        if stored_hash != proposal_hash:
            raise InputError(
                f"this idempotency key already stored request {request_id} for a different proposal; "
                "use a new key for a new proposal",
                code="idempotency_conflict",
            )
        return tx.get_request(request_id)

    def get(self, request_id: str) -> Request:
        """The stored request with its votes; raises :class:`~hitlgate.errors.NotFoundError` if unknown."""
        with self.store.read() as tx:
            return tx.get_request(request_id)

    def progress(self, request_id: str) -> QuorumProgress:
        """The non-raising quorum report of a request (for UIs)."""
        req = self.get(request_id)
        return self._progress(req)

    def checked_progress(self, request_id: str) -> tuple[QuorumProgress, dict[str, str]]:
        """The quorum report counting only stored approvals that re-verify now, and why each other one fails.

        Non-raising, for a per-request view (``hitlgate show``): a vote row
        copied from another request or written into the database counts for
        nothing and is named with its reason, instead of reading as "quorum
        met". Costs one signature check per approval, so listings keep using
        :meth:`progress`.
        """
        req = self.get(request_id)
        registry = self.approvers.all()
        people: list[Approver] = []
        unverified: dict[str, str] = {}
        for v in req.approvals:
            approver = registry.get(v.approver)
            if approver is None:
                continue
            try:
                self._check_stored_approval(req, v, approver)
            except HitlgateError as exc:
                unverified[v.approver] = str(exc)
                continue
            people.append(approver)
        return assess(req.decision.quorum, people), unverified

    def progress_of(self, req: Request) -> QuorumProgress:
        """The non-raising quorum report of a request already read (reminders use it under their write lock)."""
        return self._progress(req)

    def _progress(self, req: Request) -> QuorumProgress:
        registry = self.approvers.all()
        people = [registry[v.approver] for v in req.approvals if v.approver in registry]
        return assess(req.decision.quorum, people)

    # -- votes ------------------------------------------------------------

    def approve(self, signed: SignedStatement, *, now: datetime | None = None) -> Request:
        """Record a signed approval; grants the request when the quorum is met."""
        return self._vote(signed, "approve", self.now(now))

    def reject(self, signed: SignedStatement, *, now: datetime | None = None) -> Request:
        """Record a signed rejection; one eligible rejection ends the request."""
        return self._vote(signed, "reject", self.now(now))

    def _authenticate(self, signed: SignedStatement, verdict: str, now: datetime) -> tuple[Approver, PasskeyUse | None]:
        """The registered approver who signed ``signed``, and the passkey use to store when a passkey signed it."""
        s = signed.statement
        if s.verdict != verdict:
            raise InputError(f"this statement's verdict is {s.verdict!r}; it cannot be submitted as {verdict!r}")
        approver = self.approvers.get(s.approver)
        use: PasskeyUse | None = None
        if signed.is_passkey:
            use = self.passkeys.verify_vote(signed, approver)
        else:
            try:
                signed.verify(approver.public_key)
            except ApprovalError as exc:
                if self.demo or not is_demo_key(approver.public_key, (approver.name,)):
                    raise
                raise _demo_key_hint(exc, approver.name) from exc
            if not self.demo:
                require_not_demo_key(approver.name, approver.public_key)
        # After the signature, for both kinds: an unauthenticated statement is refused as such first.
        if s.at > now + MAX_CLOCK_SKEW:
            raise ApprovalError(f"{s.approver}'s statement is dated in the future ({s.at.isoformat()})")
        return approver, use

    @staticmethod
    def _check_integrity(req: Request) -> None:
        """Refuse a request whose stored action no longer hashes to its stored digest."""
        try:
            recomputed = action_digest(req.action)
        except HitlgateError as exc:
            raise StorageError(f"request {req.id}: the stored action cannot be hashed: {exc}") from exc
        if recomputed != req.action_digest:
            raise StorageError(
                f"request {req.id}: the stored action does not match its digest; "
                "it was changed after it was proposed, so nothing bound to it is valid"
            )

    def _vote(self, signed: SignedStatement, verdict: str, now: datetime) -> Request:
        approver, use = self._authenticate(signed, verdict, now)
        s = signed.statement
        closed: HitlgateError | None = None
        with self.store.write(Reads(s.request_id)) as tx:
            req = self._expire_if_due(tx, tx.get_request(s.request_id), now)
            if req.status != lifecycle.PENDING:
                closed = ApprovalError(f"request {req.id} is {req.status}; it takes no more votes")
            else:
                self._check_vote(tx, req, signed, approver)
                if use is not None:
                    # The counter moves in the vote's transaction, or not at all.
                    self.passkeys.advance(tx, use, now)
                vote = tx.insert_vote(
                    request_id=req.id,
                    approver=approver.name,
                    verdict=verdict,
                    statement=signed.to_dict(),
                    signed_at=s.at,
                    recorded_at=now,
                )
                # The votes read under this transaction's lock plus the one
                # just stored: exactly what reading them again would return.
                req = dataclasses.replace(req, votes=(*req.votes, vote))
                if verdict == "reject":
                    # One eligible rejection ends the request; the event
                    # records both the vote and the new status.
                    # Equivalent mutants (current=None, or no current): the move then reads the same
                    # request again, in this transaction, with the same votes. The pragma sits inside the
                    # call, so that it covers that one line of it.
                    req = tx.transition(req.id, lifecycle.REJECTED, now=now, reason=f"rejected by {approver.name}",
                                        current=req,  # pragma: no mutate
                                        )
                    self.audit_log.append(tx, "rejected", req, {"approver": approver.name, "signed": signed.to_dict()},
                                          now)
                else:
                    self.audit_log.append(tx, "approved", req, {"approver": approver.name, "signed": signed.to_dict()},
                                          now)
                    report = self._verified_progress(req)
                    if report.met:
                        # From now on the request's deadline is its warrant's:
                        # the warrant lifetime counts from the grant, whenever
                        # in the approval window the grant came.
                        until = now + timedelta(seconds=self.warrant_lifetime(req.decision))
                        # Equivalent mutants of current=req: as for the rejection above.
                        req = tx.transition(req.id, lifecycle.GRANTED, now=now, reason=report.describe(),
                                            expires_at=until,
                                            current=req,  # pragma: no mutate
                                            )
                        self.audit_log.append(tx, "granted", req, {"approvals": list(report.counted),
                                                                   "quorum": report.to_dict()}, now)
        if closed is not None:
            raise closed
        # As stored by the transaction that just committed (not read again).
        return req

    def _check_vote(self, tx: Transaction, req: Request, signed: SignedStatement, approver: Approver) -> None:
        s = signed.statement
        if s.action_digest != req.action_digest:
            raise ApprovalError(
                f"{approver.name}'s statement is for action {s.action_digest}, but request {req.id} "
                f"is for {req.action_digest}"
            )
        self._check_integrity(req)
        if same_person(approver.name, req.requester):
            raise ApprovalError(f"{approver.name} proposed request {req.id} and cannot also vote on it",
                                code="self_approval")
        # A second vote by the same approver is refused by the store: the
        # votes table's unique (request_id, approver) constraint makes
        # insert_vote raise ApprovalError ("has already voted"). That is the
        # one check; a query here first would only repeat it (and could
        # race with a concurrent vote, which the constraint cannot).
        require_eligible(req.decision.quorum, approver)

    # -- warrants ---------------------------------------------------------

    def _verified_progress(self, req: Request, quorum: Quorum | None = None) -> QuorumProgress:
        """The quorum report of ``req``, counting only stored approvals that re-verify now.

        Every approval of a registered approver is checked again (signature
        against today's registered key, request id, action digest, verdict,
        not the requester) before it counts: a vote row written straight
        into the database must never move a request to ``granted``, nor be
        named in its audit event. A row that fails raises
        :class:`StorageError` (``forged_vote``). ``quorum`` defaults to the
        stored decision's; the warrant path passes the one the policy gives now.
        """
        registry = self.approvers.all()
        people: list[Approver] = []
        for v in req.approvals:
            approver = registry.get(v.approver)
            if approver is None:
                continue
            self._check_stored_approval(req, v, approver)
            people.append(approver)
        return assess(quorum if quorum is not None else req.decision.quorum, people)

    def _check_stored_approval(self, req: Request, vote: Vote, approver: Approver) -> None:
        """Refuse a stored approval that is not exactly what its approver signed for this request and action.

        Votes are checked when they arrive, but the warrant is minted later
        from what the store holds. Someone with database access could insert
        a vote row, or rewrite the stored action together with its digest
        after the grant; re-verifying each counted signature against the
        registered key, the request id and the current digest here means the
        warrant is only ever bound to an action its approvers actually signed.
        ``approver`` is the registered approver named by ``vote``.
        """
        forged = "forged_vote"
        try:
            signed = SignedStatement.from_dict(vote.statement)
        except ValidationError as exc:
            raise StorageError(f"request {req.id}: the stored approval by {vote.approver} is corrupt: {exc}",
                               code=forged) from exc
        s = signed.statement
        if (s.request_id, s.action_digest, s.verdict, s.approver) != (
            req.id, req.action_digest, "approve", vote.approver
        ):
            raise StorageError(
                f"request {req.id}: the stored approval by {vote.approver} is not an approval of this request "
                f"and action {req.action_digest}; the store was changed after the vote",
                code=forged,
            )
        if same_person(s.approver, req.requester):
            raise StorageError(f"request {req.id}: the store holds an approval by its own requester {s.approver}",
                               code=forged)
        if not self.demo and not signed.is_passkey:
            # A store written in demo mode must not yield warrants once
            # opened by a real engine. (A passkey is never a demo key.)
            require_not_demo_key(s.approver, approver.public_key)
        try:
            verify_signature(signed, approver, passkey_lookup(self.store, self.config.key_dir))
        except ApprovalError as exc:
            raise StorageError(
                f"request {req.id}: the stored approval by {vote.approver} does not verify: {exc}; "
                "the vote row was written into the database, not cast",
                code=forged,
            ) from exc

    def _warrant_approvals(self, req: Request, decision: Decision) -> list[dict[str, Any]]:
        """The approvals a warrant carries: approver, the slot they filled, time, signature.

        Counted against ``decision``'s quorum (the policy's answer now), never
        the stored one, which someone with database access could weaken.
        """
        if not decision.needs_approval:
            return []
        report = self._verified_progress(req, decision.quorum)
        if not report.met:
            raise ApprovalError(f"request {req.id}: quorum no longer met: {report.describe()}")
        roles: dict[str, str] = {name: decision.quorum.slots[i].describe()
                                 for i, name in report.assignment.items()}
        out = []
        for v in req.approvals:
            if v.approver not in report.counted:
                continue
            entry = {
                "approver": v.approver,
                "role": roles.get(v.approver, "registered approver"),
                "at": v.statement["statement"]["at"],
                "signature": v.statement["signature"],
            }
            if "reason" in v.statement["statement"]:
                # Signed with the statement, so the guard needs it to re-verify.
                entry["reason"] = v.statement["statement"]["reason"]
            out.append(entry)
        return out

    def _decide_stored(self, req: Request) -> Decision:
        """What the policy decides now for the request's stored proposal."""
        try:
            proposal = Proposal.from_dict(dict(req.proposal))
        except ValidationError as exc:
            raise StorageError(f"request {req.id}: the stored proposal is no longer valid: {exc}") from exc
        return self.decider.decide_validated(proposal)

    @staticmethod
    def _check_tier(req: Request, decision: Decision) -> None:
        """Refuse a warrant unless the policy gives the stored tier now, and it is not deny (see :meth:`warrant`)."""
        if decision.tier == req.tier == req.decision.tier:
            if decision.tier != "deny":
                return
            # Only a database writer makes a denied request granted; the tiers agree, so say what is wrong.
            raise ApprovalError(
                f"request {req.id} is denied, by its stored decision and by the policy now; a denied action gets no "
                "warrant. Its status was changed in the database",
                code="tier_mismatch",
            )
        raise ApprovalError(
            f"request {req.id} is stored as {req.tier}, but the policy now gives {decision.tier} for its stored "
            f"proposal ({'; '.join(decision.reasons)}); no warrant is issued. The policy or inventory changed "
            "since it was proposed (propose again), or the stored request was changed in the database",
            code="tier_mismatch",
        )

    def warrant_lifetime(self, *decisions: Decision) -> int:
        """Seconds a warrant lives from the grant: the shortest any of ``decisions`` gives.

        Each decision's own ``warrant_ttl_seconds``, else the configured
        ``warrant_ttl_seconds`` (the contract's fallback). The warrant path
        passes the stored decision and the policy's answer now, so a policy
        that shortened the lifetime since the proposal is obeyed, and one
        that lengthened it never stretches a grant made under the old one.
        """
        return min(d.warrant_lifetime(self.config.warrant_ttl_seconds) for d in decisions)

    @staticmethod
    def _granted_at(events: Sequence[AuditEvent], req: Request) -> datetime:
        """When ``req`` was granted: the time of its ``granted`` audit event in ``events`` (the chain over the
        tables).

        A request is granted once (only a pending request can be). A second
        ``granted`` event was appended by someone with database access, who
        needs no key for it (only warrant and consumption events are anchored
        the moment they happen), to stretch the warrant's lifetime: refused
        (``state_contradicts_chain``), and no warrant is issued. A granted row
        with no such event was written into the database; its own update
        time is used, and the checks of :meth:`_issue` (forged votes, tier)
        and ``audit verify`` refuse or report it.
        """
        granted = [e for e in events if e.kind == "granted"]
        if len(granted) > 1:
            raise StorageError(
                f"request {req.id}: the audit chain shows it granted {len(granted)} times (events "
                f"{', '.join(str(e.seq) for e in granted)}), but a request is granted once: the chain was changed; "
                "no warrant is issued",
                code="state_contradicts_chain",
            )
        return granted[0].at if granted else req.updated_at

    def _issue(self, tx: Transaction, req: Request, now: datetime, decision: Decision, *,
               expires_at: datetime) -> WarrantRecord:
        """Sign and store the warrant of ``req``, expiring at ``expires_at``.

        ``decision`` is the policy's answer now for its proposal;
        ``expires_at`` is the grant time plus :meth:`warrant_lifetime`.
        """
        self._check_integrity(req)
        self._check_tier(req, decision)
        approvals = self._warrant_approvals(req, decision)
        self.audit_log.require_known_keyring(tx)
        issued = self.issuer.issue(
            request_id=req.id,
            action_digest=req.action_digest,
            tier=req.tier,
            approvals=approvals,
            policy_revision=req.policy_revision,
            now=now,
            expires_at=expires_at,
        )
        record = tx.insert_warrant(
            jti=issued.jti,
            request_id=req.id,
            token=issued.token,
            kid=issued.kid,
            issued_at=now,
            expires_at=issued.expires_at,
        )
        self.audit_log.append(
            tx,
            "warrant_issued",
            req,
            {"jti": issued.jti, "kid": issued.kid, "expires_at": issued.expires_at.isoformat(),
             "approvals": [a["approver"] for a in approvals]},
            now,
            anchored=True,
        )
        return record

    def warrant(self, request_id: str, *, now: datetime | None = None) -> WarrantRecord:
        """The one warrant of a granted request: issued on first call, the same token after.

        Raises :class:`ApprovalError` while the quorum is not met and
        :class:`IllegalTransition` for a request that can no longer be executed.
        """
        at = self.now(now)
        lapsed: HitlgateError | None = None
        # Never sign a warrant the engine itself would refuse: the tier must
        # be the one the policy gives now for the stored proposal, so a tier
        # rewritten in the database (deny -> auto_allow, dual -> single) gets
        # no warrant. Evaluated before the write lock is taken, then checked
        # to still be about the same stored proposal.
        # Equivalent mutants of `before`, `fresh` and the early `decision`: they only decide whether the
        # policy is asked before the write lock is taken; the write transaction asks it itself whenever that
        # answer is missing or was about another stored proposal.
        before, issued = self.store.peek_request(request_id)  # pragma: no mutate
        fresh = before.status == lifecycle.GRANTED and issued is None  # pragma: no mutate
        decision = self._decide_stored(before) if fresh else None  # pragma: no mutate - as above
        with self.store.write(Reads(request_id, warrant=True, events=_ISSUE_EVENTS)) as tx:
            self.require_anchored_head(tx)
            req = tx.get_request(request_id)
            if req.status == lifecycle.PENDING:
                raise PendingApproval(f"request {req.id} is pending: {self._progress(req).describe()}")
            if req.status != lifecycle.GRANTED:
                raise IllegalTransition(f"request {req.id} is {req.status}; no warrant can be issued for it")
            existing = tx.warrant_for(req.id)
            if existing is not None:
                if existing.consumed_at is not None:
                    raise IllegalTransition(f"the warrant of request {req.id} was already used")
                if existing.expires_at <= at:
                    self._expire(tx, req, at, "the warrant expired unused")
                    lapsed = IllegalTransition(
                        f"the warrant of request {req.id} expired unused; the request is now expired, propose again"
                    )
                else:
                    return existing
            elif at >= req.expires_at:
                # The same rule expire_due applies: a grant whose deadline
                # (the grant plus the warrant lifetime) passed before any
                # warrant was fetched has lapsed. Whether a sweep happened to
                # run first must not decide that.
                self._expire(tx, req, at, "the grant lapsed without its warrant being used")
                lapsed = IllegalTransition(
                    f"request {req.id} was granted but its warrant lifetime ran out before a warrant was fetched; "
                    "the request is now expired, propose again"
                )
            else:
                # The chain has the last word over the tables: a request whose
                # warrant row was deleted must not get a second warrant.
                # One indexed lookup serves this check and the grant's time below.
                events = tx.request_events(req.id, _ISSUE_EVENTS)
                earlier = [e for e in events if e.kind != "granted"]
                if earlier:
                    raise StorageError(
                        f"request {req.id} has no warrant in the database, but the audit chain shows one "
                        f"({earlier[0].kind} at event {earlier[0].seq}): the database was changed; no second "
                        "warrant is issued",
                        code="state_contradicts_chain",
                    )
                if decision is None or req.proposal != before.proposal:
                    decision = self._decide_stored(req)
                # Refusals over tampering and policy changes come before the
                # lapse, so they are reported as what they are.
                self._check_integrity(req)
                self._check_tier(req, decision)
                # The clock started at the grant: a warrant fetched late in
                # its lifetime gets only what is left of it, never a fresh one.
                until = self._granted_at(events, req) + timedelta(seconds=self.warrant_lifetime(req.decision, decision))
                if at < until:
                    return self._issue(tx, req, at, decision, expires_at=until)
                self._expire(tx, req, at, "the grant lapsed without its warrant being used")
                lapsed = IllegalTransition(
                    f"request {req.id} was granted but its warrant lifetime ran out before a warrant was fetched; "
                    "the request is now expired, propose again"
                )
        assert lapsed is not None  # noqa: S101 - every other path returned above.
        raise lapsed

    # -- revocation and expiry -------------------------------------------

    def revoke(self, request_id: str, *, by: str, signed: SignedStatement, now: datetime | None = None) -> Request:
        """Withdraw a pending or granted-but-unused request.

        ``signed`` is a ``reject`` statement by ``by`` over this request and
        its action digest. The revoker must be a registered approver who
        could fill a place in the request's quorum, or hold the role security.
        """
        at = self.now(now)
        s = signed.statement
        if s.approver != by:
            raise ApprovalError(f"the revocation is signed by {s.approver}, not by {by}")
        if s.request_id != request_id:
            raise ApprovalError(f"the revocation is for request {s.request_id}, not {request_id}")
        approver, use = self._authenticate(signed, "reject", at)
        with self.store.write() as tx:
            req = tx.get_request(request_id)
            if s.action_digest != req.action_digest:
                raise ApprovalError(f"the revocation is for action {s.action_digest}, not {req.action_digest}")
            quorum = req.decision.quorum
            if not (any(can_fill(slot, approver) for slot in quorum.slots) or REVOKER_ROLE in approver.roles):
                raise ApprovalError(f"{by} may not revoke request {req.id}")
            lifecycle.check_transition(req.status, lifecycle.REVOKED)
            w = tx.warrant_for(req.id)
            if w is not None and w.consumed_at is not None:
                raise IllegalTransition(
                    f"request {req.id}'s warrant was already used; the action is running or ran, revocation is too late"
                )
            if use is not None:
                self.passkeys.advance(tx, use, at)
            # current= only spares transition() a re-read of the row this
            # write transaction already holds, so it is not mutated (the pragma inside the call covers
            # its line alone; at the end of the statement it would cover the statement's first line).
            req = tx.transition(req.id, lifecycle.REVOKED, now=at, reason=f"revoked by {by}",
                                current=req,  # pragma: no mutate
                                )
            tx.insert_revocation(request_id=req.id, revoked_by=by, statement=signed.to_dict(), now=at)
            self.audit_log.append(tx, "revoked", req, {"by": by, "signed": signed.to_dict(),
                                                       "warrant_jti": None if w is None else w.jti}, at)
        return self.get(request_id)

    def _expire(self, tx: Transaction, req: Request, now: datetime, reason: str) -> Request:
        req = tx.transition(req.id, lifecycle.EXPIRED, now=now, reason=reason,
                            current=req,  # pragma: no mutate - only spares a re-read (see revoke)
                            )
        self.audit_log.append(tx, "expired", req, {"reason": reason}, now)
        return req

    def _expire_if_due(self, tx: Transaction, req: Request, now: datetime) -> Request:
        """Expire ``req`` if it is pending and its approval window has closed at ``now``; return it as it stands."""
        if req.status == lifecycle.PENDING and now >= req.expires_at:
            return self._expire(tx, req, now, WINDOW_CLOSED)
        return req

    def expire_due(self, now: datetime | None = None, *, limit: int | None = None) -> list[Request]:
        """Expire what is due at ``now``; return the requests that changed.

        Pending requests past their approval window and granted requests
        whose warrant lapsed unused become ``expired``; granted requests
        whose warrant was consumed long ago with no recorded outcome become
        ``execution_unknown``. With ``limit``, at most that many of each kind
        (oldest id first) in this one write transaction, so a periodic caller
        holding the write lock never makes votes wait for a whole backlog;
        what is left is swept by its next call (a vote on a request past its
        window is refused meanwhile all the same).
        """
        at = self.now(now)
        changed: list[str] = []
        with self.store.write() as tx:
            for rid in tx.request_ids(status=lifecycle.PENDING, expires_before=at, limit=limit):
                self._expire_if_due(tx, tx.get_request(rid), at)
                changed.append(rid)
            for rid in tx.granted_unused_expired(at, limit=limit):
                self._expire(tx, tx.get_request(rid), at, "the grant lapsed without its warrant being used")
                changed.append(rid)
            # The executor had until its warrant expired to start, and the grace to report.
            for rid in tx.granted_consumed_lapsed(at - OUTCOME_GRACE, limit=limit):
                req = tx.transition(rid, lifecycle.EXECUTION_UNKNOWN, now=at,
                                    reason="the warrant was used but no outcome was ever recorded")
                self.audit_log.append(tx, "execution_unknown", req, {"reason": "no outcome recorded"}, at)
                changed.append(rid)
        return [self.get(rid) for rid in changed]

    def wait(
        self, request_id: str, timeout: float, *, poll_seconds: float = 0.25  # pragma: no mutate
    ) -> Request:
        """Block until the request leaves ``pending`` or ``timeout`` seconds pass; return it.

        The returned request may still be pending (the caller checks); an
        approval window that closes while waiting makes it ``expired``.
        """
        # The poll interval, the deadline's comparisons and the sleep's floor
        # decide only how long a wait lasts, never what it returns; they are
        # not mutated (a deadline in the past is: waiting for a vote).
        deadline = time.monotonic() + max(0.0, timeout)  # pragma: no mutate
        while True:
            req = self.get(request_id)
            if req.status != lifecycle.PENDING:
                return req
            if self.now() >= req.expires_at:
                with self.store.write() as tx:
                    self._expire_if_due(tx, tx.get_request(request_id), self.now())
                continue
            if time.monotonic() >= deadline:  # pragma: no mutate
                return req
            time.sleep(min(poll_seconds, max(0.0, deadline - time.monotonic())))  # pragma: no mutate

    # -- audit ------------------------------------------------------------

    def checkpoint(self, *, now: datetime | None = None) -> Checkpoint:
        """Sign the current chain head now (a checkpoint on demand)."""
        return self.audit_log.checkpoint(self.now(now))

    def audit_events(self, request_id: str | None = None) -> list[AuditEvent]:
        """The audit events in order (all, or those of one request)."""
        with self.store.read() as tx:
            return tx.events(request_id=request_id)

    def verify_audit(
        self,
        public_keys: Mapping[str, Any] | None = None,
        *,
        anchors: Sequence[Checkpoint] = (),
        incremental: bool = False,
        record: bool = True,
    ) -> AuditReport:
        """:meth:`_verify_audit`; a chain that fails also drops the verified mark.

        Once any verify (``--full`` included) finds the chain broken, the
        next incremental verify must not report "OK" from a mark set before
        the damage was found: it walks from genesis again and fails too.
        """
        try:
            return self._verify_audit(public_keys, anchors=anchors, incremental=incremental, record=record)
        except AuditChainError:
            if record:
                self.anchor.clear_verified()
            raise

    def _verify_audit(
        self,
        public_keys: Mapping[str, Any] | None = None,
        *,
        anchors: Sequence[Checkpoint] = (),
        # Its one caller, verify_audit, passes both: changing these defaults (equivalent mutants)
        # changes nothing, so they are not mutated.
        incremental: bool = False,  # pragma: no mutate
        record: bool = True,  # pragma: no mutate
    ) -> AuditReport:
        """Verify the chain and every checkpoint; raises :class:`AuditChainError` at the first bad event.

        The chain is checked against the checkpoints in the database *and*
        those in the engine's audit anchor file (plus ``anchors``, e.g. an
        auditor's own copies): a rewrite behind any of them, a truncation
        past one, or an anchored checkpoint deleted from the database is
        reported. A missing anchor file while the database holds checkpoints
        is reported too. ``public_keys`` defaults to every key the engine
        keyring ever had; an outside auditor passes the keys from a JWKS
        they trust. Then the tables are held against the chain, request by
        request (see :mod:`hitlgate.engine.approve._reconcile`).

        Everything is streamed: events, checkpoints and anchor lines are read
        in chunks and the tables a batch of requests at a time, in one
        read snapshot, and the checkpoints are merged with the events by
        seq (:func:`verify_chain`), so memory does not grow with the chain.
        An anchor file further out of seq order than
        :data:`~hitlgate.engine.ledger.audit.ORDER_WINDOW` lines is read
        again and held in memory (with a warning).

        After a successful verify (``record``) the highest checkpoint of the
        engine's own anchor that the walk matched is recorded next to the
        anchor, outside the database (:meth:`AuditAnchor.record_verified`).
        With ``incremental`` the walk starts there instead of at genesis:
        the stored event at that seq must still have the anchored, signed
        hash and exactly that many events must precede it (a count over the
        primary key), so any rewrite that recomputed hashes and any deletion
        before it is caught (the verify then walks from genesis to name the
        first bad event); then every later event, checkpoint
        and anchored checkpoint is checked as in a full walk, and the tables
        of the requests with events after it. Not caught incrementally: an
        event before the mark edited *in place* while its stored hash was
        left alone (its content no longer matches its own hash), a
        checkpoint row before the mark deleted, and table rows edited for a
        request with no event since the mark; a full verify catches them.
        Without a usable mark an incremental verify is a full one.
        """
        keys = public_keys if public_keys is not None else self.keyring.public_keys(include_expired=True)
        noted = self.keyring.anchor_note()
        anchor_exists = self.anchor.exists()
        mark = self.anchor.verified_mark() if incremental else None
        # snapshot=False differs only on PostgreSQL, where test_verify_sees_one_snapshot_under_concurrent_writes
        # kills it; the mutation run leaves the PostgreSQL variants out (SQLite's read is one snapshot anyway).
        with self.store.read(snapshot=True) as tx:  # pragma: no mutate
            stored_cps = tx.checkpoint_count()
            # The anchor as it was when the snapshot began: lines appended by later commits while the walk
            # streams the file would name checkpoints past the end of the chain this snapshot sees.
            anchor_size = self.anchor.size()
            # Raised after the chain is checked, so that a rewrite an auditor's
            # --anchor copy catches is named first.
            anchor_lost: AuditChainError | None = None
            if not anchor_exists and (stored_cps or noted is not None):
                anchor_lost = AuditChainError(self.audit_log.anchor_missing_message(stored_cps, noted),
                                              code="anchor_missing")
            rare = tx.rare_events()
            lost = self._lost_checkpoints(tx, rare, keys) if public_keys is None else set()

            def skip(cp: Checkpoint) -> bool:
                return bool(lost) and any(
                    cp.kid == kid
                    # "<" and "<=" agree: the checkpoint at a counted event's own seq is the new
                    # key's (the event counts only then), never a lost key's.
                    and cp.seq < seq  # pragma: no mutate
                    for seq, kid in lost
                )

            unverifiable = 0

            def stored() -> Iterator[Checkpoint]:
                nonlocal unverifiable
                for cp in tx.iter_checkpoints(from_seq=genesis if start is None else start[0]):
                    if skip(cp):
                        unverifiable += 1
                        continue
                    yield cp

            # Equivalent starting values (not mutated): own_max and genesis are only compared with a
            # checkpoint's seq, and no checkpoint has seq 0 or 1 (a proposal writes two events before one can be
            # signed); own_mark is only used once its seq is above 0, so its starting hash is never read.
            own_max = 0  # pragma: no mutate
            genesis = 0  # pragma: no mutate - the same: the stored checkpoints from seq 0 or from 1.
            own_mark = (0, "")  # pragma: no mutate
            # Where the engine's anchor is read from, and the highest seq of the lines before that: an
            # incremental walk begins at the first line at or above its start (AuditAnchor.start_of, set
            # below once the start holds); a full one at the top.
            read_from, below = 0, 0

            def own() -> Iterator[Checkpoint]:
                nonlocal own_max, own_mark
                own_max = max(own_max, below)
                for cp in self.anchor.iter_checkpoints(start=read_from, until=anchor_size):
                    own_max = max(own_max, cp.seq)
                    if skip(cp):
                        continue
                    # ">=" would only take a second anchor line at the same seq, which carries the same
                    # head hash or is refused by verify_chain as a contradiction before the mark is used.
                    if cp.seq > own_mark[0]:  # pragma: no mutate
                        own_mark = (cp.seq, cp.head_hash)
                    yield cp

            def outside(held: bool) -> Iterable[Checkpoint]:
                # The anchor file streams in seq order give or take a few lines (in_seq_order); one further
                # out of order than that is held in memory and sorted (held).
                mine = in_seq_order(list(own()) if held else own())
                theirs = in_seq_order([cp for cp in anchors if not skip(cp)])
                merged = heapq.merge(mine, theirs, key=lambda cp: cp.seq)
                return list(merged) if held else merged

            start = mark
            if start is not None and (tx.event_hash(start[0]) != start[1]
                                      or tx.events_through(start[0]) != start[0]):
                # History up to the mark no longer has the hash a signed,
                # anchored checkpoint gives it, or events before it were
                # deleted (a gap): walk from genesis instead, which fails too
                # and names the first bad event and everything else.
                log.warning("event seq %d differs from the verified mark: verifying from genesis", start[0])
                start = None
            if start is not None:
                read_from, below = self.anchor.start_of(start[0], until=anchor_size)
            try:
                report = verify_chain(
                    tx.iter_events(after_seq=0 if start is None else start[0]),
                    stored(), keys, anchors=outside(False), start=start,
                )
            except CheckpointOrderError as exc:
                log.warning("%s in the audit anchor %s: verifying again with its lines held in memory",
                            exc, self.anchor.path)
                # What the first pass read of the anchor counts for nothing: the second read is the one checked.
                unverifiable, own_max, own_mark = 0, 0, (0, "")
                report = verify_chain(
                    tx.iter_events(after_seq=0 if start is None else start[0]),
                    stored(), keys, anchors=outside(True), start=start,
                )
            if anchor_lost is None and noted is not None and noted.path == str(self.anchor.path) \
                    and own_max < noted.seq:
                anchor_lost = AuditChainError(
                    f"the audit anchor {self.anchor.path} ends before seq {noted.seq}, which the keyring records "
                    "it held: the anchor was truncated or replaced by an older copy",
                    code="anchor_missing",
                )
            if anchor_lost is not None:
                raise anchor_lost
            reconciler = Reconciler()
            if start is None:
                for batch in tx.iter_request_ids(chunk=RECONCILE_BATCH):
                    reconciler.add(tx.reconcile_rows(batch))
                orphans = tx.orphan_request_ids()
            else:
                orphans = tx.request_ids_with_events_after(start[0])
            for i in range(0, len(orphans), RECONCILE_BATCH):
                reconciler.add(tx.reconcile_rows(orphans[i:i + RECONCILE_BATCH]))
        if reconciler.count:
            problems = reconciler.problems
            shown = "; ".join(problems[:5]) + (f"; and {reconciler.count - 5} more" if reconciler.count > 5 else "")
            raise AuditChainError(
                f"the audit chain verifies, but the database contradicts it in {reconciler.count} place(s): {shown}",
                code="replay" if reconciler.replay else "state_contradicts_chain",
                problems=problems,
            )
        matched = own_mark[0]  # 0 when no checkpoint of the engine's anchor was matched
        # 0 and 1 agree here: no checkpoint has seq 1 (a proposal writes two events before one can be signed).
        since = start[0] if start is not None else 0  # pragma: no mutate
        # Whether the mark moves on; ">=" would only write the same mark again.
        advanced = matched > since  # pragma: no mutate
        if record and matched and matched <= report.last_seq and advanced:
            try:
                self.anchor.record_verified(*own_mark)
            except StorageError as exc:
                log.warning("%s; the next incremental verify starts from an earlier point", exc)
        return AuditReport(
            events=report.events_checked,
            checkpoints=report.checkpoints_verified,
            head_seq=report.last_seq,
            head_hash=report.head_hash if report.last_seq else "",
            anchored=report.anchored,
            anchor=str(self.anchor.path),
            anchor_reinits=tuple(sorted(e.seq for e in rare if e.kind == ANCHOR_REINIT_KIND)),
            unverifiable_checkpoints=unverifiable,
            start_seq=report.start_seq,
            requests_checked=reconciler.requests_checked,
        )

    def reinit_anchor(self, reason: str, *, now: datetime | None = None) -> Checkpoint:
        """Start a new audit anchor after the old one was lost; the operator's explicit, audited act.

        Refused while the anchor exists. Appends an ``anchor_reinitialized``
        event naming the reason and the last checkpoint the database held,
        signs a checkpoint of it and writes it to the new anchor. Checkpoints
        from before it can no longer be checked against this machine's
        anchor, only against copies kept elsewhere; ``audit verify`` lists
        every re-initialisation.
        """
        text = reason.strip() if isinstance(reason, str) else ""
        if not text:
            raise InputError("a reason is required to re-initialise the audit anchor (--reason TEXT)")
        if len(text) > 2000:
            raise InputError("the reason is longer than 2000 characters")
        _require_utf8(text)
        at = self.now(now)
        return self.audit_log.reinit_anchor(text, at)

    def export_audit(self, out: IO[str], *, request_id: str | None = None) -> tuple[int, int]:
        """Write the chain (events, then checkpoints) as JSON Lines; return both counts.

        With ``request_id`` only that request's events are written, without
        checkpoints: a filtered export is for reading, not for verifying. A
        request id with no events (a typo) is :class:`NotFoundError`, before
        anything is written, not an empty export.
        """
        # Equivalent mutants, not mutated: without the snapshot the export differs only when a writer
        # commits during it (no single-process test can interleave one), and tx.events() with no request
        # id reads the same events as iter_events(), only all at once instead of streamed.
        with self.store.read(snapshot=True) as tx:  # pragma: no mutate
            if request_id is None:  # pragma: no mutate
                events: Iterator[AuditEvent] = tx.iter_events()
            else:
                found = tx.events(request_id=request_id)
                if not found:
                    raise NotFoundError(f"no audit events for request {shorten(request_id, 60)!r}")
                events = iter(found)
            cps = iter(()) if request_id is not None else tx.iter_checkpoints()
            written = 0

            def counted() -> Iterator[Checkpoint]:
                nonlocal written
                for cp in cps:
                    written += 1
                    yield cp

            # Streamed: one chunk of events at a time, written as it is read.
            return export_jsonl(events, out, counted()), written

    def guard(self, *, clock: Clock | None = None) -> Guard:
        """An executor :class:`~hitlgate.engine.approve.guard.Guard` on this engine's store, audit log and keys.

        ``clock`` overrides the engine clock for the guard's checks.
        """
        return Guard(
            self.store, self.audit_log, self.verifier, self.decider, self.approvers,
            demo=self.demo, clock=clock if clock is not None else self.clock,
            passkeys=passkey_lookup(self.store, self.config.key_dir),
        )

    def list(
        # The default page size is a convenience: any value from 1 to MAX_LIST_LIMIT is as correct.
        self, status: str | None = None, *, limit: int = 1000, before: ListCursor | None = None,  # pragma: no mutate
        filters: ListFilters | None = None, within: int | None = None,
    ) -> builtins.list[Request]:
        """Stored requests, newest first, filtered by status and ``filters``; ``before`` continues a listing.

        ``within`` matches the filters against only the next ``within`` requests of the listing
        (see :meth:`~hitlgate.engine.ledger.store.Transaction.list_requests`).
        """
        with self.store.read(one_statement=True) as tx:
            return tx.list_requests(status, limit=limit, before=before, filters=filters, within=within)

    def listing_mark(self, status: str | None, nth: int, *, before: ListCursor | None = None) -> ListCursor | None:
        """The cursor after the ``nth`` request of a listing, or None when it has fewer (where ``within`` stopped)."""
        with self.store.read() as tx:
            return tx.listing_mark(status, nth, before=before)

    def count(self, status: str) -> int:
        """How many stored requests are in ``status`` (the service's pending gauge)."""
        with self.store.read() as tx:
            return tx.count_requests(status)

    def warrant_records(self, request_ids: Sequence[str]) -> dict[str, WarrantRecord]:
        """The issued warrant (with its consumption time) of each request that has one, read by key."""
        with self.store.read() as tx:
            return tx.warrants_for(request_ids)

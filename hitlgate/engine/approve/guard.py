"""The executor guard: no warrant, no action.

An executor hands the guard the warrant it was given and the action it is
about to run. The guard refuses unless **all** of these hold, in order:

1. the action is well formed and its digest is recomputed here, from the
   action about to run (never taken from the caller or the token);
2. the warrant verifies: engine signature with a trusted ``kid``, pinned
   ``EdDSA``, issuer, audience, time bounds at the guard's clock, and its
   ``action_digest`` equals the recomputed one
   (:class:`~hitlgate.engine.keys.warrants.WarrantVerifier`);
3. the stored request it names exists, is ``granted`` (not revoked, expired
   or already executed), its stored digest equals the warrant's, and its
   stored action still hashes to that digest, so someone with database
   access who edits the stored action is refused;
4. the warrant is the one the engine issued for that request (same ``jti``);
5. the audit chain, looked up by request id (an index, not a scan), shows
   that warrant issued and not yet consumed: a ``consumed_warrants`` row
   deleted from the database, or a request set back to ``granted``, does
   not make a warrant usable again;
6. the policy, evaluated again now on the stored proposal, does not demand
   a stricter tier than the one the warrant was issued under (the inventory
   or the policy may have changed since the approval);
7. the approvals inside the warrant still satisfy, with today's inventory,
   the quorum the policy gives now: each approver is still registered, the
   signature in the warrant verifies against the key registered for them
   today (a replaced key withdraws the approval), and the slots they fill
   by today's roles and teams meet the quorum. An approver removed from
   the inventory after the grant (compromised, or gone) therefore stops
   every unused warrant that needed their approval; approvals beyond the
   quorum may lapse without effect;
8. the warrant id has not been consumed; it is consumed here, in the same
   transaction that re-checks 3, 4 and 5, under the store's write lock and a
   unique constraint, so it is consumed exactly once even across processes.

Then the action runs, and its outcome is recorded in the store and the
audit chain: ``executed`` when it returns, ``execution_failed`` when it
raises an exception, ``execution_unknown`` when it is interrupted (timeout,
cancellation, ``KeyboardInterrupt``) and nobody can say whether it took
effect.

Every refusal raises one :class:`~hitlgate.errors.InvalidWarrant` whose
message gives the reason; the same reason is written to the audit log as a
refusal event (see ``REFUSAL_KIND`` in :mod:`hitlgate.engine.ledger.auditlog`).

Three ways to use it::

    guard.execute(token, action, run)                  # a function call
    with guard.authorize(token, action) as grant: ...  # a context manager
    @guard.tool("rotate_api_key")                      # a decorator for agent tools
    def rotate(target: str, **parameters): ...
    rotate("svc-x", warrant=token, grace_seconds=60)
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from hitlgate.engine._time import Clock, require_utc
from hitlgate.engine.approve import lifecycle
from hitlgate.engine.approve.approvals import SignedStatement, Statement, parse_time
from hitlgate.engine.approve.passkeys import PasskeyKey, verify_signature
from hitlgate.engine.approve.quorum import assess
from hitlgate.engine.decide.decision import TIER_RANK, Decision
from hitlgate.engine.decide.inventory import Approver
from hitlgate.engine.decide.proposal import Proposal, action_digest
from hitlgate.engine.keys._demokeys import require_not_demo_key
from hitlgate.engine.keys.warrants import WarrantClaims
from hitlgate.engine.ledger.audit import Checkpoint
from hitlgate.engine.ledger.store import Reads, decode_peeked
from hitlgate.errors import (
    AuditChainError,
    HitlgateError,
    IllegalTransition,
    InputError,
    InvalidWarrant,
    NotFoundError,
    StorageError,
    ValidationError,
)

if TYPE_CHECKING:
    from hitlgate.engine.approve.approvers import ApproverRegistry
    from hitlgate.engine.decide.decider import Decider
    from hitlgate.engine.keys.warrants import WarrantVerifier
    from hitlgate.engine.ledger.auditlog import AuditLog
    from hitlgate.engine.ledger.store import Request, Store, Transaction, WarrantRecord

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: The events of a request that the guard's chain check reads (_chain_problem).
_CHAIN_EVENTS = ("warrant_issued", "consumed")


@dataclass(frozen=True)
class Grant:
    """What the guard authorised: one action, under one consumed warrant."""

    request_id: str
    jti: str
    tier: str
    action: Mapping[str, Any] = field(repr=False)
    action_digest: str
    claims: WarrantClaims = field(repr=False)
    consumed_at: datetime


@dataclass
class _Outcome:
    result: Any = None
    detail: str = ""


class Guard:
    """The enforcement point in front of executors. Build it with ``Engine.guard()``."""

    def __init__(
        self,
        store: Store,
        audit_log: AuditLog,
        verifier: WarrantVerifier,
        decider: Decider,
        approvers: ApproverRegistry,
        *,
        demo: bool,
        clock: Clock,
        passkeys: Callable[[str], PasskeyKey | None],
    ) -> None:
        """Guard executors with the engine's store, audit log, warrant verifier, decider and approvers.

        ``demo`` is the engine's demo mode (approvals signed with the public
        demo keys count only then); ``clock`` gives the time of each check;
        ``passkeys`` finds an enrolled passkey by credential id, refusing a
        row the engine did not bind (``passkey_lookup``).
        """
        self.store = store
        self.audit_log = audit_log
        self.verifier = verifier
        self.decider = decider
        self.approvers = approvers
        self.demo = demo
        self.clock = clock
        #: Finds an enrolled passkey by credential id (raises on a row the engine did not bind).
        self.passkeys = passkeys

    # -- the checks -------------------------------------------------------

    def _refuse(
        self, reason: str, *, request_id: str | None, digest: str | None, now: datetime, code: str | None = None
    ) -> InvalidWarrant:
        self.audit_log.record_refusal(
            reason, request_id=request_id, detail={"presented_digest": digest}, now=now
        )
        # Info, not warning: the refusal is raised to the caller and written
        # to the audit log; the log line is only for operators tracing it.
        log.info("guard refused a warrant: %s", reason)
        return InvalidWarrant(reason, code=code)

    def _digest(self, action: Mapping[str, Any], now: datetime) -> str:
        try:
            if not isinstance(action, Mapping) or set(action) != {"type", "target", "parameters"}:
                raise ValidationError("action", ["(document): must be an object with type, target and parameters"])
            return action_digest(action)
        except ValidationError as exc:
            raise self._refuse(f"invalid warrant: the action is malformed: {exc}", request_id=None,
                               digest=None, now=now) from None

    def _verify(self, token: str, digest: str, now: datetime) -> WarrantClaims:
        try:
            return self.verifier.verify(token, action_digest=digest, now=now)
        except InvalidWarrant as exc:
            raise self._refuse(str(exc), request_id=None, digest=digest, now=now, code=exc.code) from None

    def _check_policy(self, claims: WarrantClaims, req: Request, action: Mapping[str, Any], now: datetime) -> None:
        problem = self._policy_problem(claims, req, action)
        if problem is not None:
            raise self._refuse(problem[0], request_id=claims.request_id, digest=claims.action_digest, now=now,
                               code=problem[1])

    def _policy_problem(
        self, claims: WarrantClaims, req: Request, action: Mapping[str, Any]
    ) -> tuple[str, str | None] | None:
        """What the policy says now against this warrant: a stricter tier, or approvals that no longer count."""
        document = {**dict(req.proposal), "action": dict(action)}
        try:
            decision = self.decider.decide_validated(Proposal.from_dict(document))
        except HitlgateError as exc:
            return f"invalid warrant: the policy could not be re-evaluated: {exc}", None
        # A deny outranks every tier a verified warrant can carry (never deny: MIN_APPROVALS in warrants.py).
        if TIER_RANK[decision.tier] > TIER_RANK[claims.tier]:
            return (f"invalid warrant: the policy now requires {decision.tier} for this action, stricter than "
                    f"the {claims.tier} it was approved under ({'; '.join(decision.reasons)})", None)
        return self._approvals_problem(claims, decision)

    def _approvals_problem(self, claims: WarrantClaims, decision: Decision) -> tuple[str, str | None] | None:
        """Check 7: the warrant's approvals still meet ``decision``'s quorum with today's inventory."""
        if not decision.needs_approval:
            return None
        registry = self.approvers.all()
        passkeys = self.passkeys
        people: list[Approver] = []
        lapsed: list[str] = []
        for a in claims.approvals:
            name = str(a.get("approver"))
            approver = registry.get(name)
            if approver is None:
                lapsed.append(f"{name} is no longer a registered approver")
                continue
            try:
                # The field name only labels parse_time's error, which the except below replaces.
                at = parse_time(str(a.get("at")), "at")  # pragma: no mutate
                # A reason that is not text fails the Statement's own check: the approval lapses (fail closed).
                statement = Statement(claims.request_id, claims.action_digest, "approve", name, at,
                                      a.get("reason", ""))
                sig = a.get("signature")
                signed = SignedStatement(statement, sig if isinstance(sig, Mapping) else str(sig))
                # Ed25519 against today's registered key; a passkey against its
                # credential, which must still be enrolled for this approver.
                verify_signature(signed, approver, passkeys)
                if not self.demo and not signed.is_passkey:
                    require_not_demo_key(name, approver.public_key)
            except HitlgateError:
                lapsed.append(f"{name}'s approval does not verify against the key registered for {name} today")
                continue
            people.append(approver)
        report = assess(decision.quorum, people)
        if not report.met:
            why = f" ({'; '.join(lapsed)})" if lapsed else ""
            return (f"invalid warrant: its approvals no longer meet the quorum with today's inventory{why}: "
                    f"{report.describe()}", "approval_withdrawn")
        return None

    def _consume(self, token: str, claims: WarrantClaims, now: datetime) -> datetime:
        problem: tuple[str, str | None] | None = None
        # What the checks below read, sent with the lock of the chain head (Store.write).
        reads = Reads(claims.request_id, votes=False, warrant=True, events=_CHAIN_EVENTS)
        with self.store.write(reads) as tx:
            try:
                # The votes are not needed: the warrant carries its approvals (check 7). Equivalent
                # mutants (votes read after all): the same request, with votes nothing here looks at.
                req = tx.get_request(claims.request_id, votes=False)  # pragma: no mutate
            except NotFoundError:
                problem = (f"invalid warrant: request {claims.request_id} does not exist in this store", None)
            except StorageError as exc:
                problem = (f"invalid warrant: {exc}", None)
            else:
                problem = (self._anchored_head_problem(tx)
                           or self._store_problem(req, tx.warrant_for(req.id), claims)
                           or self._chain_problem(tx, claims))
                if problem is None:
                    try:
                        tx.consume(jti=claims.jti, request_id=req.id, now=now)
                    except InvalidWarrant as exc:
                        problem = (f"invalid warrant: {exc}", "replay")
                    else:
                        # Anchored before success is reported: a checkpoint of
                        # this event is signed and appended to the anchor file
                        # once the transaction commits, so deleting the chain's
                        # tail to hide the consumption leaves the database
                        # behind the anchor (see _anchor_problem).
                        self.audit_log.append(
                            tx, "consumed", req, {"jti": claims.jti, "kid": claims.kid}, now, anchored=True
                        )
        if problem is not None:
            raise self._refuse(problem[0], request_id=claims.request_id, digest=claims.action_digest, now=now,
                               code=problem[1])
        return now

    def _anchor_last(self, claims: WarrantClaims, now: datetime) -> Checkpoint | None:
        """The audit anchor's last checkpoint; an unreadable anchor refuses the warrant (fail closed)."""
        try:
            return self.audit_log.anchor.last()
        except HitlgateError as exc:
            # Equivalent mutants of request_id and digest (their line carries the pragma: a statement's
            # trailing pragma covers its first line): the refusal cannot be recorded while the anchor is
            # unreadable, since recording appends to the chain, which checks the anchor first.
            raise self._refuse(f"invalid warrant: {exc}", request_id=claims.request_id, digest=claims.action_digest,
                               now=now, code=exc.code) from None  # pragma: no mutate

    def _anchored_head_problem(self, tx: Transaction) -> tuple[str, str | None] | None:
        """:meth:`_anchor_problem` in a write transaction: the anchor is read under its lock.

        Made through :meth:`~hitlgate.engine.ledger.auditlog.AuditLog.require_anchored_head`,
        which remembers it in ``tx``, so the consumption event appended next
        does not read the anchor and look the event up a second time. An
        unreadable anchor refuses the warrant (fail closed).
        """
        try:
            self.audit_log.require_anchored_head(tx)
        except HitlgateError as exc:
            return f"invalid warrant: {exc}", exc.code
        return None

    def _anchor_problem(self, tx: Transaction, last: Checkpoint | None) -> tuple[str, str | None] | None:
        """Whether the database chain is behind the audit anchor (truncated or rewritten); O(1).

        ``last`` is the anchor's last line, read before ``tx``'s first query
        (see :meth:`~hitlgate.engine.ledger.auditlog.AuditLog.require_anchored_head`).
        """
        try:
            self.audit_log.check_anchored_head(tx, last)
        except AuditChainError as exc:
            return f"invalid warrant: {exc}", exc.code
        return None

    @staticmethod
    def _chain_problem(tx: Transaction, claims: WarrantClaims) -> tuple[str, str | None] | None:
        """What the audit chain says against this warrant: already consumed, or issued under another id.

        The tables can be edited without touching the chain (a deleted
        ``consumed_warrants`` row, a request set back to ``granted``), so the
        chain, looked up by request id (an index, not a scan), has the last word.
        """
        try:
            events = tx.request_events(claims.request_id, _CHAIN_EVENTS)
        except AuditChainError as exc:
            # One of its events was edited so that it no longer reads as an event: the chain cannot vouch.
            return f"invalid warrant: {exc}", exc.code
        for e in events:
            if e.kind == "consumed":
                return (
                    f"invalid warrant: the audit chain shows request {claims.request_id}'s warrant "
                    f"{e.payload.get('jti')} consumed at event {e.seq} (replay; the database was changed to "
                    "hide it)",
                    "replay",
                )
        issued = [e for e in events if e.kind == "warrant_issued"]
        if len(issued) != 1 or issued[0].payload.get("jti") != claims.jti:
            return (
                f"invalid warrant: the audit chain does not show warrant {claims.jti} as the one issued for "
                f"request {claims.request_id}",
                "state_contradicts_chain",
            )
        return None

    @staticmethod
    def _store_problem(req: Any, stored: Any, claims: WarrantClaims) -> tuple[str, str | None] | None:
        reason = Guard._store_reason(req, stored, claims)
        if reason is None:
            return None
        return reason, ("replay" if reason.endswith("(replay)") else None)

    @staticmethod
    def _store_reason(req: Any, stored: Any, claims: WarrantClaims) -> str | None:
        if stored is not None and stored.consumed_at is not None and stored.jti == claims.jti:
            return f"invalid warrant: warrant {claims.jti} was already used (replay)"
        if req.status != lifecycle.GRANTED:
            return f"invalid warrant: request {req.id} is {req.status}, not granted"
        if req.action_digest != claims.action_digest:
            return (f"invalid warrant: the stored request {req.id} is for action {req.action_digest}, "
                    f"the warrant for {claims.action_digest}")
        try:
            recomputed = action_digest(req.action)
        except HitlgateError:
            # Equivalent mutants ("" -> None or "XXXX"): any value that is not a
            # "sha256:<hex>" digest differs from every warrant's digest, so the
            # refusal below follows either way.
            recomputed = ""  # pragma: no mutate
        if recomputed != claims.action_digest:
            return (f"invalid warrant: the stored action of request {req.id} was changed after approval "
                    "(it no longer hashes to the approved digest)")
        if req.tier != claims.tier:
            return f"invalid warrant: the warrant says tier {claims.tier}, the stored request {req.tier}"
        if stored is None or stored.jti != claims.jti:
            return f"invalid warrant: warrant {claims.jti} is not the one issued for request {req.id}"
        return None

    def check(self, token: str, action: Mapping[str, Any], *, now: datetime | None = None) -> WarrantClaims:
        """Run every check except consumption; raises :class:`InvalidWarrant`. Nothing is consumed."""
        at = require_utc(now if now is not None else self.clock(), "now")
        digest = self._digest(action, at)
        claims = self._verify(token, digest, at)
        # Read before the snapshot: see AuditLog.require_anchored_head.
        last = self._anchor_last(claims, at)
        with self.store.read() as tx:
            try:
                req = tx.get_request(claims.request_id, votes=False)  # pragma: no mutate - as in _consume
            except NotFoundError:
                raise self._refuse(f"invalid warrant: request {claims.request_id} does not exist in this store",
                                   request_id=None, digest=digest, now=at) from None
            except StorageError as exc:
                # Stored corrupted: named, and recorded against the request (as consume() does).
                raise self._refuse(f"invalid warrant: {exc}", request_id=claims.request_id, digest=digest,
                                   now=at) from None
            problem = self._snapshot_problem(tx, last, req, tx.warrant_for(req.id), claims)
        if problem is not None:
            raise self._refuse(problem[0], request_id=claims.request_id, digest=digest, now=at, code=problem[1])
        self._check_policy(claims, req, action, at)
        return claims

    def _snapshot_problem(
        self, tx: Transaction, last: Checkpoint | None, req: Request, stored: WarrantRecord | None,
        claims: WarrantClaims,
    ) -> tuple[str, str | None] | None:
        """What a read snapshot says against this warrant, in :meth:`check`'s order: the anchor (a truncated
        or rewritten chain), the tables, then the chain (a consumption the tables were changed to hide)."""
        return (self._anchor_problem(tx, last) or self._store_problem(req, stored, claims)
                or self._chain_problem(tx, claims))

    def _refusal_in_order(
        self, claims: WarrantClaims, req: Request, stored: WarrantRecord | None, problem: tuple[str, str | None],
        now: datetime,
    ) -> tuple[str, str | None]:
        """The refusal a consumption reports, once ``problem`` (the tables' or the policy's) refuses it.

        :meth:`_snapshot_problem` first, then ``problem``: tampering is
        reported as what it is, not as the refusal it happened to cause.
        Read only on the way to a refusal.
        """
        last = self._anchor_last(claims, now)
        try:
            with self.store.read() as tx:
                # The tables as this snapshot holds them, not as the peek read them: a consumption committed
                # since (another guard's, honestly) is then a replay, not one "hidden" in the tables.
                try:
                    req_now = tx.get_request(claims.request_id, votes=False)  # pragma: no mutate - as in _consume
                    stored_now = tx.warrant_for(req_now.id)
                except HitlgateError:
                    req_now, stored_now = req, stored
                return self._snapshot_problem(tx, last, req_now, stored_now, claims) or problem
        except StorageError:
            # The store failed since the peek: the refusal stands, without the evidence this read would add.
            log.warning("guard: could not read the anchor and chain to order a refusal", exc_info=True)
            return problem

    def consume(self, token: str, action: Mapping[str, Any], *, now: datetime | None = None) -> Grant:
        """Check everything and consume the warrant; the caller must then run the action and call :meth:`record`.

        Prefer :meth:`execute`, :meth:`authorize` or :meth:`tool`, which
        record the outcome for you.
        """
        at = require_utc(now if now is not None else self.clock(), "now")
        digest = self._digest(action, at)
        claims = self._verify(token, digest, at)
        # Not check()'s read transaction: _consume makes every one of its store, anchor and chain checks again
        # under the write lock. Before the policy is asked, one statement reads the request and its warrant, so
        # that a warrant already used or not the stored one is refused without asking it.
        try:
            row = self.store.peek_row(claims.request_id)
        except NotFoundError:
            raise self._refuse(f"invalid warrant: request {claims.request_id} does not exist in this store",
                               request_id=None, digest=digest, now=at) from None
        try:
            req, stored = decode_peeked(row)
        except StorageError as exc:
            # A corrupted row refuses the warrant, named (check() refuses it too); a store that cannot be
            # read at all is a StorageError, raised by peek_row above.
            raise self._refuse(f"invalid warrant: {exc}", request_id=claims.request_id, digest=digest,
                               now=at) from None
        problem = self._store_problem(req, stored, claims) or self._policy_problem(claims, req, action)
        if problem is not None:
            problem = self._refusal_in_order(claims, req, stored, problem, at)
            raise self._refuse(problem[0], request_id=claims.request_id, digest=digest, now=at, code=problem[1])
        consumed_at = self._consume(token, claims, at)
        return Grant(
            request_id=claims.request_id,
            jti=claims.jti,
            tier=claims.tier,
            action=dict(action),
            action_digest=claims.action_digest,
            claims=claims,
            consumed_at=consumed_at,
        )

    def record(self, grant: Grant, outcome: str, detail: str = "", *, now: datetime | None = None) -> None:
        """Record the outcome (``executed``, ``execution_failed``, ``execution_unknown``) of a consumed grant."""
        if outcome not in lifecycle.OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        # The detail is often an exception's text (a remote API's error message): cleaned, never refused,
        # so the outcome is always recorded and the action's own exception is the one that propagates.
        self.report(grant.request_id, grant.jti, outcome, lifecycle.as_plain_text(str(detail)), now=now)

    def report(self, request_id: str, jti: str, outcome: str, detail: str = "", *, now: datetime | None = None) -> None:
        """Record the outcome a remote executor reports for the warrant ``jti`` it consumed (the HTTP service).

        Raises :class:`IllegalTransition` unless that warrant was consumed by
        the guard for ``request_id`` and no outcome was recorded yet, and
        :class:`~hitlgate.errors.InputError` for an unknown ``outcome``.
        """
        if outcome not in lifecycle.OUTCOMES:
            raise InputError(f"outcome: {outcome!r} is not one of {', '.join(sorted(lifecycle.OUTCOMES))}")
        if not isinstance(detail, str) or not lifecycle.plain_text(detail):
            # Every way an outcome is reported (HTTP, `hitlgate outcome`, this call) refuses what `show` must not print.
            raise InputError("detail: must be text without control characters other than newlines and tabs, "
                             "nor bidirectional override or isolate characters", code="invalid_outcome")
        at = require_utc(now if now is not None else self.clock(), "now")
        with self.store.write(Reads(request_id, votes=False, warrant=True)) as tx:
            # Lifecycle rule 3: an outcome follows a consumption by the
            # guard. A Grant is a plain value anyone can construct, so check
            # the store, or an executor that skipped the guard could write
            # "executed" into the lifecycle and the audit chain.
            stored = tx.warrant_for(request_id)
            if stored is None or stored.consumed_at is None or stored.jti != jti:
                raise IllegalTransition(
                    f"request {request_id}: no outcome can be recorded, warrant {jti} "
                    "was not consumed by the guard"
                )
            # The votes are not read: the move and its event need the request's status, digest and decision.
            req = tx.transition(request_id, outcome, now=at, reason=detail[:500],
                                current=tx.get_request(request_id, votes=False))
            self.audit_log.append(tx, outcome, req, {"jti": jti, "detail": detail[:2000]}, at)

    # -- the three ways to run an action ---------------------------------

    @contextmanager
    def authorize(self, token: str, action: Mapping[str, Any], *, now: datetime | None = None) -> Iterator[Grant]:
        """Consume the warrant, yield the grant, and record how the ``with`` block ended."""
        grant = self.consume(token, action, now=now)
        try:
            yield grant
        except Exception as exc:
            self.record(grant, lifecycle.EXECUTION_FAILED, f"{type(exc).__name__}: {exc}")
            raise
        except BaseException as exc:
            # Interrupted: the action may or may not have taken effect.
            self.record(grant, lifecycle.EXECUTION_UNKNOWN, f"interrupted by {type(exc).__name__}")
            raise
        self.record(grant, lifecycle.EXECUTED, "completed")

    def execute(
        self,
        token: str,
        action: Mapping[str, Any],
        run: Callable[[Mapping[str, Any]], R],
        *,
        now: datetime | None = None,
    ) -> R:
        """Verify and consume the warrant, run ``run(action)``, record the outcome, return its result."""
        with self.authorize(token, action, now=now) as grant:
            return run(grant.action)

    def tool(
        self,
        action_type: str | None = None,
        *,
        to_action: Callable[..., Mapping[str, Any]] | None = None,
    ) -> Callable[[Callable[P, R]], Callable[..., R]]:
        """Decorate an agent tool so it runs only with a warrant: ``fn(..., warrant=TOKEN)``.

        The action is built from the call: ``type`` is ``action_type`` (or the
        function name), ``target`` the argument named ``target``, and
        ``parameters`` every other argument. ``to_action(*args, **kwargs)``
        overrides that mapping.
        """

        def decorate(fn: Callable[P, R]) -> Callable[..., R]:
            sig = inspect.signature(fn)
            kind = action_type or fn.__name__

            def build(*args: Any, **kwargs: Any) -> dict[str, Any]:
                if to_action is not None:
                    return dict(to_action(*args, **kwargs))
                bound = sig.bind(*args, **kwargs)
                bound.apply_defaults()
                params: dict[str, Any] = {}
                target: Any = None
                for name, value in bound.arguments.items():
                    p = sig.parameters[name]
                    if name == "target":
                        target = value
                    elif p.kind is inspect.Parameter.VAR_KEYWORD:
                        params.update(value)
                    elif p.kind is inspect.Parameter.VAR_POSITIONAL:
                        if value:
                            raise TypeError(f"{fn.__name__}: positional varargs cannot be bound into an action")
                    else:
                        params[name] = value
                if not isinstance(target, str):
                    raise TypeError(f"{fn.__name__} needs a string argument named 'target'")
                return {"type": kind, "target": target, "parameters": params}

            @functools.wraps(fn)
            def wrapper(*args: Any, warrant: str | None = None, **kwargs: Any) -> R:
                if not warrant:
                    at = require_utc(self.clock(), "now")
                    raise self._refuse(f"invalid warrant: {fn.__name__} was called without a warrant",
                                       request_id=None, digest=None, now=at)
                action = build(*args, **kwargs)
                with self.authorize(warrant, action):
                    return fn(*args, **kwargs)

            return wrapper

        return decorate

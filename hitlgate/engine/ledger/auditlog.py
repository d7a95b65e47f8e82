"""The audit log: the one call through which an event enters the audit chain.

:meth:`AuditLog.append` appends one event in the caller's write
transaction, so the event commits or rolls back with the state change it
describes. It makes, in this order:

1. unless the operator is re-initialising a lost anchor, the audit anchor
   must exist while the database holds checkpoints (or the keyring records
   that the anchor held one): code ``anchor_missing``;
2. the database chain must not be behind the anchor (its last line's event
   is stored with that hash; once per write transaction, under its lock):
   codes ``chain_truncated`` and ``chain_rewritten``;
3. the event, with the request's action digest, controls and status, is
   hash-chained onto the head the transaction holds
   (:meth:`~hitlgate.engine.ledger.store.Transaction.append`);
4. every ``checkpoint_every``-th event, and every ``anchored`` one (warrant
   issue and consumption), gets a checkpoint signed by the engine key: the
   keyring must know the keys the database was signed with (code
   ``keyring_missing``); the checkpoint is stored in the same transaction
   and appended to the anchor file once it commits.

The engine's workflow (:class:`~hitlgate.engine.approve.workflow.Engine`)
and the executor guard (:class:`~hitlgate.engine.approve.guard.Guard`) hold
the same audit log. It also signs checkpoints on demand, starts a new
anchor or keyring after the old one was lost (the operator's audited acts),
and records guard refusals in a transaction of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from hitlgate.engine.decide.decision import Decision
from hitlgate.engine.keys.keyring import STATE_FILE as KEYRING_STATE_FILE
from hitlgate.engine.keys.keyring import AnchorNote, EngineKeyring
from hitlgate.engine.ledger.anchor import AuditAnchor
from hitlgate.engine.ledger.audit import AuditEvent, Checkpoint, sign_checkpoint
from hitlgate.engine.ledger.store import Request, Store, Transaction
from hitlgate.errors import AuditChainError, HitlgateError, InputError, StorageError

log = logging.getLogger(__name__)

#: Sign a checkpoint of the audit chain head every this many events.
DEFAULT_CHECKPOINT_EVERY = 50

#: The audit kind of a guard refusal (the payload also says ``subject: warrant``).
REFUSAL_KIND = "warrant_refused"

#: The audit kind of an operator starting a new audit anchor after the old one was lost.
ANCHOR_REINIT_KIND = "anchor_reinitialized"

#: The audit kind of an operator starting a new engine keyring after the old one was lost.
KEYRING_REPLACED_KIND = "keyring_replaced"

#: The name under which a write transaction remembers that :meth:`AuditLog.require_anchored_head` passed.
_ANCHORED_HEAD = "anchored_head"


def _controls(decision: Decision) -> list[dict[str, str]]:
    # The decision schema requires both as strings, so the defaults and str() only guard a Decision built by
    # hand: their mutants are equivalent (test_proposal_events_record_the_whole_decision.py holds the keys).
    return [{"framework": str(c.get("framework", "")), "id": str(c.get("id", ""))}  # pragma: no mutate
            for c in decision.controls]


class AuditLog:
    """The audit chain of one store, checkpointed with one engine keyring into one anchor file."""

    def __init__(
        self,
        store: Store,
        keyring: EngineKeyring,
        anchor: AuditAnchor,
        *,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    ) -> None:
        """Append to ``store``'s chain; sign checkpoints with ``keyring`` and anchor them in ``anchor``."""
        if checkpoint_every < 1:
            raise InputError("checkpoint_every must be at least 1")
        self.store = store
        self.keyring = keyring
        self.anchor = anchor
        self.checkpoint_every = checkpoint_every
        self._keyring_matched = False
        self._replacing_keyring = False
        store.anchored_seq = self._anchored_seq

    def _anchored_seq(self) -> int | None:
        """The seq of the anchor's newest checkpoint, which a write compares with its event (None: none, or unread).

        Asked by :meth:`Store.write` before it begins (see
        :attr:`Store.anchored_seq`); an anchor that cannot be read here is
        read again, and reported, by the comparison inside the write.
        """
        try:
            last = self.anchor.last()
        except Exception:  # noqa: BLE001 - reported by require_anchored_head, under the lock.
            return None
        return None if last is None else last.seq

    def append(
        self,
        tx: Transaction,
        kind: str,
        request: Request | None,
        payload: Mapping[str, Any],
        now: datetime,
        *,
        request_id: str | None = None,
        reinit: bool = False,
        anchored: bool = False,
    ) -> AuditEvent:
        """Append an audit event in ``tx``, with the request's digest, controls and status when it has one.

        ``request_id`` names the request of an event without a stored
        ``request`` (a refusal for an unknown one). Refuses
        (``anchor_missing``) while the audit anchor is missing but the
        database holds checkpoints, unless ``reinit`` (the operator's
        explicit :meth:`reinit_anchor`). With ``anchored`` the event gets a
        signed checkpoint of its own, appended to the anchor file once ``tx``
        commits (warrant issue and consumption: see :meth:`require_anchored_head`).
        """
        if not reinit:
            self._require_anchor(tx)
            # Never build on a chain the anchor shows truncated or rewritten:
            # a new event at a deleted seq would paper over the truncation.
            self.require_anchored_head(tx)
        body: dict[str, Any] = {}
        if request is not None:
            body["action_digest"] = request.action_digest
            body["controls"] = _controls(request.decision)
            body["status"] = request.status
        body.update(payload)
        rid = request.id if request is not None else request_id
        ev = tx.append(kind, request_id=rid, payload=body, at=now)
        if anchored or ev.seq % self.checkpoint_every == 0:
            self.require_known_keyring(tx)
            # Issue/consume checkpoints skip the keyring note (two more fsyncs
            # per flow); periodic and on-demand ones, and the first line of a
            # new anchor, record it.
            note = not anchored or ev.seq % self.checkpoint_every == 0
            self._store_checkpoint(tx, sign_checkpoint(self.keyring, ev, now), reinit=reinit, note=note)
        return ev

    def record_refusal(self, reason: str, *, request_id: str | None, detail: Mapping[str, Any], now: datetime) -> None:
        """Write a guard refusal event in its own transaction; a logging failure never hides the refusal."""
        try:
            with self.store.write() as tx:
                request: Request | None = None
                if request_id is not None:
                    try:
                        # Its votes are not needed here (votes=True would only read them too).
                        request = tx.get_request(request_id, votes=False)  # pragma: no mutate
                    except (InputError, StorageError):
                        # Unknown, or stored corrupted: the refusal still names the request by its id.
                        request = None
                self.append(
                    tx,
                    REFUSAL_KIND,
                    request,
                    {"subject": "warrant", "reason": reason, **detail},
                    now,
                    # append() names the stored request's own id whenever it has the request, so passing
                    # request_id there as well would change nothing.
                    request_id=None if request is not None else request_id,  # pragma: no mutate
                )
        except HitlgateError:
            # The refusal stands whether or not it could be logged; the
            # caller raises InvalidWarrant either way.
            log.exception("could not record a warrant refusal in the audit log")

    def checkpoint(self, at: datetime) -> Checkpoint:
        """Sign the current chain head at ``at`` (a checkpoint on demand), store it and anchor it."""
        with self.store.write() as tx:
            head = tx.head()
            if head is None:
                raise StorageError("the audit chain is empty; there is nothing to checkpoint")
            self.require_known_keyring(tx)
            cp = sign_checkpoint(self.keyring, head, at)
            self._store_checkpoint(tx, cp)
        return cp

    def reinit_anchor(self, reason: str, at: datetime) -> Checkpoint:
        """Start a new audit anchor after the old one was lost; the operator's explicit, audited act.

        ``reason`` is the operator's, already checked (see
        :meth:`~hitlgate.engine.approve.workflow.Engine.reinit_anchor`).
        Refused while the anchor exists. Appends an ``anchor_reinitialized``
        event naming the reason and the last checkpoint the database held,
        signs a checkpoint of it and writes it to the new anchor. Checkpoints
        from before it can no longer be checked against this machine's
        anchor, only against copies kept elsewhere; ``audit verify`` lists
        every re-initialisation.
        """
        if self.anchor.exists():
            raise InputError(
                f"the audit anchor {self.anchor.path} exists; --reinit only starts a new one when it is lost",
                code="anchor_present",
            )
        with self.store.write() as tx:
            last = tx.last_checkpoint()
            ev = self.append(
                tx,
                ANCHOR_REINIT_KIND,
                None,
                {"reason": reason, "anchor": str(self.anchor.path),
                 "last_checkpoint_seq": None if last is None else last.seq},
                at,
                reinit=True,
            )
            cp = sign_checkpoint(self.keyring, ev, at)
            self._store_checkpoint(tx, cp, reinit=True)
        return cp

    def replace_lost_keyring(self, reason: str, at: datetime) -> str:
        """Start a new engine keyring after the old one was lost for good; return the new kid.

        ``reason`` is the operator's, already checked, and the key directory
        holds no keyring (see
        :meth:`~hitlgate.engine.approve.workflow.Engine.replace_lost_keyring`).
        Appends a ``keyring_replaced`` event naming the reason and the lost
        key ids, and signs a checkpoint of it with the new key (starting a
        new audit anchor too if the old one was lost with the keys).
        """
        with self.store.read() as tx:
            lost = tx.signing_kids()
        self._replacing_keyring = True
        try:
            self.keyring.refresh()
        finally:
            self._replacing_keyring = False
        kid = self.keyring.current_kid
        anchor_lost = not self.anchor.exists()
        with self.store.write() as tx:
            ev = self.append(
                tx,
                KEYRING_REPLACED_KIND,
                None,
                {"reason": reason, "key_dir": str(self.keyring.key_dir), "lost_kids": sorted(lost), "kid": kid,
                 "anchor_reinitialized": anchor_lost},
                at,
                reinit=anchor_lost,
            )
            self._store_checkpoint(tx, sign_checkpoint(self.keyring, ev, at), reinit=anchor_lost)
        # Only spares require_known_keyring one read: the newest checkpoint is the one just signed
        # by the new key, which the keyring knows, so that check would pass anyway.
        self._keyring_matched = True  # pragma: no mutate
        return kid

    def refuse_new_keyring(self, key_dir: Path) -> None:
        """Refuse a first engine key while the database holds signatures by earlier ones (the keyring's hook)."""
        if self._replacing_keyring:
            return
        with self.store.read() as tx:
            kids = tx.signing_kids()
        if kids:
            raise self._keyring_lost(key_dir, kids, "holds no keyring")

    def _keyring_lost(self, key_dir: Path, kids: Sequence[str], what: str) -> StorageError:
        return StorageError(
            f"the engine key directory {key_dir} {what}, but the database {self.store.url_for_people} holds "
            # signing_kids() names at most one key, so the separator is never
            # seen: the join is not mutated.
            f"checkpoints or warrants signed by engine key(s) {', '.join(sorted(kids))}: "  # pragma: no mutate
            "the keys were deleted "
            "or another key directory is configured. Refusing to sign with a new key, which would make every "
            f"later `audit verify` fail as if the audit log were forged. Restore {key_dir} from a backup "
            "(keyring.json and the current <kid>.pem), or point the configuration's `keys` at it. If the keys "
            "are lost for good, start a new keyring on purpose with `hitlgate keys reinit --reason TEXT` "
            "(recorded in the audit chain)",
            code="keyring_missing",
        )

    def require_known_keyring(self, tx: Transaction) -> None:
        """Before the first signature: the keyring must know the keys the database was signed with.

        A keyring created some other way after the old one was lost (say by
        ``hitlgate keys jwks``) is caught here. Checked once per audit log.
        """
        if self._keyring_matched:
            return
        known = {r.kid for r in self.keyring.records()}
        unknown = [k for k in tx.signing_kids() if k not in known]
        if unknown:
            raise self._keyring_lost(self.keyring.key_dir, unknown, "holds a keyring without those keys")
        # Only spares the next calls the same check (which would pass again): equivalent if mutated.
        self._keyring_matched = True  # pragma: no mutate

    def anchor_missing_message(self, checkpoints: int | None = None, noted: AnchorNote | None = None) -> str:
        """Why the anchor's absence is an alarm, and what the operator does about it."""
        if not (self.keyring.key_dir / KEYRING_STATE_FILE).exists():
            # The anchor went with the whole key directory: replacing the
            # lost keyring starts a new anchor too.
            return (
                f"the audit anchor {self.anchor.path} is missing and the engine key directory "
                f"{self.keyring.key_dir} holds no keyring: both were deleted or another directory is configured. "
                "Restore them from a backup; if they are lost for good, run `hitlgate keys reinit --reason TEXT` "
                "(recorded in the audit chain; it starts a new anchor too)"
            )
        held = "signed checkpoints" if checkpoints is None else f"{checkpoints} signed checkpoint(s)"
        if noted is not None and not checkpoints:
            held = (f"no checkpoint, while the keyring records that the anchor {noted.path} held a checkpoint "
                    f"at seq {noted.seq} (checkpoints were deleted from the database too)")
        return (
            f"the audit anchor {self.anchor.path} is missing, but the database holds {held}: it was "
            "deleted or moved, and without it a rewrite of the database cannot be ruled out. Restore it "
            "from a backup (or verify with `--anchor` copies kept elsewhere); if it is lost for good, start "
            "a new one with `hitlgate audit anchor --reinit --reason TEXT`, which is recorded in the audit chain"
        )

    def _require_anchor(self, tx: Transaction) -> None:
        """Stop writes while the anchor is missing after the first checkpoint (one ``lstat`` when it exists).

        Silently re-creating it at the next checkpoint would make ``audit
        verify`` say OK again while the checkpoints it held are gone.
        """
        if not self.anchor.exists() and (tx.has_checkpoints() or self.keyring.anchor_note() is not None):
            raise StorageError(
                self.anchor_missing_message() + "; until then the engine refuses to write", code="anchor_missing"
            )

    def require_anchored_head(self, tx: Transaction) -> None:
        """Refuse when the database chain is behind the audit anchor (O(1): no scan of either).

        Warrant issue and consumption are anchored the moment they happen
        (a checkpoint of their own event goes to the anchor file before
        success is reported), so someone with database access who deletes
        the chain's tail and resets ``audit_head`` to hide a consumption
        leaves the database *behind* the anchor. This reads only the
        anchor's last complete line and makes one primary-key lookup: the
        event at that seq must be stored with that hash (the head is then at
        or past it, seq being the key). Raises :class:`AuditChainError`,
        code ``chain_truncated`` (the event is gone) or ``chain_rewritten``
        (it has another hash). A missing anchor is left to :meth:`_require_anchor`.

        In a write transaction (the store's write lock is held, so no commit
        can land after ``tx``'s view) the anchor may be read here; a read
        transaction must read it *before* its first query and pass it as
        ``last``, or a checkpoint another process anchored after the
        snapshot would look like a truncation.

        Made once per write transaction: under its lock the chain can only
        grow by this transaction's own events, which no anchor line names
        yet (they are anchored after the commit), so a second look would
        read the same line and find the same event.
        """
        if _ANCHORED_HEAD in tx.checked:
            return
        self.check_anchored_head(tx, self.anchor.last())
        # Equivalent mutants (not remembering, or remembering in a read
        # transaction, which makes one check): the check is only repeated.
        if tx.writable:  # pragma: no mutate
            tx.checked.add(_ANCHORED_HEAD)  # pragma: no mutate

    def check_anchored_head(self, tx: Transaction, last: Checkpoint | None) -> None:
        """:meth:`require_anchored_head` with the anchor's last line ``last`` read beforehand."""
        if last is None:
            return
        held = tx.event_hash(last.seq)
        if held is None:
            head = tx.head()
            raise AuditChainError(
                f"the audit anchor {self.anchor.path} holds a signed checkpoint at seq {last.seq}, but the "
                f"database chain ends at seq {0 if head is None else head.seq}: events were deleted from the "
                "end of the chain (truncated); refusing until the database is restored",
                code="chain_truncated",
            )
        if held != last.head_hash:
            raise AuditChainError(
                f"event seq {last.seq} in the database differs from the signed checkpoint at seq {last.seq} in "
                f"the audit anchor {self.anchor.path}: the chain was rewritten; refusing until the database is "
                "restored",
                code="chain_rewritten",
            )

    def _store_checkpoint(self, tx: Transaction, cp: Checkpoint, *, reinit: bool = False, note: bool = True) -> None:
        """Store a checkpoint in ``tx`` and append it to the audit anchor once ``tx`` commits.

        The anchor is opened before the commit, so an unusable anchor rolls
        the whole change back (:class:`StorageError`); it is written only
        after the commit, so it never holds a checkpoint of an event that was
        rolled back. A write that still fails then raises after the commit:
        the change and the stored checkpoint stand, the next anchored
        checkpoint covers them. With ``note`` (and always for the first line
        of a new anchor) the keyring records the anchor and this seq, so a
        deleted anchor is reported even after every checkpoint row is deleted.
        """
        if not reinit:
            self._require_anchor(tx)
        tx.insert_checkpoint(cp)
        self.anchor.ensure_writable()

        def anchor_it() -> None:
            try:
                # Not whether the file exists: ensure_writable (above, before the commit) has created it.
                created = self.anchor.is_empty()
                self.anchor.append([cp])
                if note or created:
                    self.keyring.note_anchor(self.anchor.path, cp.seq)
            except StorageError as exc:
                raise StorageError(
                    f"{exc}. The change and the checkpoint at seq {cp.seq} were committed to the database, "
                    "but the checkpoint is not anchored outside it: fix the anchor, then run "
                    "`hitlgate audit checkpoint`",
                    code=exc.code,
                ) from exc

        tx.after_commit(anchor_it)

"""Hold the state tables against the audit chain (part of ``audit verify``).

The hash chain is the tamper-evident record; the tables are what the engine
acts on. Someone with write access to the database can edit a table without
touching the chain: delete a ``consumed_warrants`` row so a warrant runs
twice, insert a vote row, set a request back to ``granted``. Once the chain
itself has verified, :class:`Reconciler` lists every place where the
tables say something the chain does not:

1. a warrant id, or a request, consumed more than once in the chain (a replay
   that got through);
2. ``consumed_warrants`` rows without a ``consumed`` event, and ``consumed``
   events without their row (an un-consumed warrant);
3. ``warrants`` rows that differ from the request's ``warrant_issued`` event;
4. requests without a ``proposed`` event, whose digest differs from it, whose
   tier differs from the ``decided`` event, or whose status differs from the
   status recorded by the request's last event;
5. vote rows without the ``approved``/``rejected`` event that recorded them
   (or with a different verdict or statement), and vote events whose row is
   gone;
6. a lifecycle event a request has at most once (``proposed``, ``decided``,
   ``denied``, ``granted``, ``warrant_issued``, ``rejected``, ``expired``,
   ``revoked``, and one outcome) found twice: appended around the engine,
   which needs no key for an event without a checkpoint of its own (a
   second ``granted`` would restart a warrant's lifetime).

Every event the engine appends for a request carries the request's status
after the change (``payload.status``), which is what makes rule 4 possible.

Every rule is about one request, so the check runs request by request
(:meth:`Reconciler.add`, fed in batches by the store's indexed lookups) and
holds one batch at a time, never the whole chain. Rule 1 is checked within a
request: a warrant id consumed under two requests leaves one of them without
its ``consumed_warrants`` row (the primary key is the warrant id), which rule
2 reports.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from hitlgate.engine.approve import lifecycle
from hitlgate.engine.ledger.store import EventFacts, RequestRows

VOTE_KINDS = {"approved": "approve", "rejected": "reject"}

#: Problems kept (per rule) for the report; the count covers all of them.
MAX_KEPT = 1000


def _replays(g: RequestRows) -> list[str]:
    out: list[str] = []
    by_jti: dict[str, list[EventFacts]] = defaultdict(list)
    for e in g.events:
        if e.kind == "consumed":
            by_jti[str(e.payload.get("jti"))].append(e)
    for jti, evs in by_jti.items():
        if len(evs) > 1:
            seqs = ", ".join(str(e.seq) for e in evs)
            out.append(f"warrant {jti} was consumed {len(evs)} times (events {seqs}): a replay got through")
    if len(by_jti) > 1:
        out.append(f"request {g.request_id} had {len(by_jti)} different warrants consumed: "
                   "it was executed more than once")
    return out


def _consumption_problems(g: RequestRows) -> list[str]:
    out: list[str] = []
    rid = g.request_id
    chain = {str(e.payload.get("jti")): e for e in g.events if e.kind == "consumed"}
    for jti, e in sorted(chain.items()):
        if jti not in g.consumed:
            out.append(
                f"warrant {jti} of request {rid} is consumed in the chain (event {e.seq}) but its "
                "consumed_warrants row is missing: the warrant was un-consumed in the database"
            )
    for jti in sorted(g.consumed - set(chain)):
        out.append(f"consumed_warrants holds warrant {jti} of request {rid}, which the chain never shows consumed")
    return out


def _request_problems(g: RequestRows) -> list[str]:
    out: list[str] = []
    rid = g.request_id
    proposed = next((e for e in g.events if e.kind == "proposed"), None)
    decided = next((e for e in g.events if e.kind == "decided"), None)
    issued = next((e for e in reversed(g.events) if e.kind == "warrant_issued"), None)
    last = next((e for e in reversed(g.events) if "status" in e.payload), None)
    if g.request is not None:
        status, tier, digest = g.request
        if proposed is None:
            out.append(f"request {rid} has no proposed event in the chain: it was inserted into the database")
        else:
            if proposed.payload.get("action_digest") != digest:
                out.append(f"request {rid}: its action digest differs from the proposed event {proposed.seq}")
            if decided is None or decided.payload.get("tier") != tier:
                where = f"the decided event {decided.seq}" if decided is not None else "the chain (no decided event)"
                out.append(f"request {rid}: its tier {tier} differs from {where}: the tier was rewritten")
            if last is not None and last.payload.get("status") != status:
                out.append(
                    f"request {rid} is {status} in the database, but its last event ({last.kind}, seq {last.seq}) "
                    f"left it {last.payload.get('status')}"
                )
    if issued is not None and g.warrant_jti != issued.payload.get("jti"):
        out.append(f"request {rid}: its warrants row differs from the warrant_issued event {issued.seq}")
    if issued is None and g.warrant_jti is not None:
        out.append(f"request {rid}: the warrants row {g.warrant_jti} has no warrant_issued event in the chain")
    return out


def _vote_problems(g: RequestRows) -> list[str]:
    out: list[str] = []
    rid = g.request_id
    chain: dict[str, EventFacts] = {}
    for e in g.events:
        if e.kind in VOTE_KINDS:
            chain[str(e.payload.get("approver"))] = e
    seen: set[str] = set()
    for approver, verdict, statement in g.votes:
        seen.add(approver)
        found = chain.get(approver)
        if found is None:
            out.append(f"request {rid}: the vote row by {approver} has no vote event in the chain (forged vote)")
            continue
        try:
            stored: Any = json.loads(statement)
        except ValueError:
            stored = None
        if VOTE_KINDS[found.kind] != verdict or stored != found.payload.get("signed"):
            out.append(
                f"request {rid}: the vote row by {approver} differs from the vote event {found.seq} "
                "(verdict or signed statement changed in the database)"
            )
    for approver, e in sorted(chain.items()):
        if approver not in seen:
            out.append(f"request {rid}: the vote by {approver} (event {e.seq}) is missing from the votes table")
    return out


#: Events the engine appends at most once per request (only a pending request moves, and only once; a
#: final state never moves again).
ONCE_KINDS = ("proposed", "decided", "denied", "granted", "warrant_issued", "rejected", "expired", "revoked")


def _lifecycle_problems(g: RequestRows) -> list[str]:
    out: list[str] = []
    rid = g.request_id
    for kind in ONCE_KINDS:
        seqs = [e.seq for e in g.events if e.kind == kind]
        if len(seqs) > 1:
            out.append(f"request {rid} has {len(seqs)} {kind} events (seqs {', '.join(map(str, seqs))}), but a "
                       f"request has one: an event was appended around the engine")
    outcomes = [e for e in g.events if e.kind in lifecycle.OUTCOMES]
    if len(outcomes) > 1:
        out.append(f"request {rid} has {len(outcomes)} outcome events ("
                   f"{', '.join(f'{e.kind} {e.seq}' for e in outcomes)}), but a request has one: an event was "
                   "appended around the engine")
    return out


_RULES = (_replays, _consumption_problems, _request_problems, _vote_problems, _lifecycle_problems)


class Reconciler:
    """Collects contradictions request by request; memory holds at most :data:`MAX_KEPT` messages per rule."""

    def __init__(self) -> None:
        self._kept: list[list[str]] = [[] for _ in _RULES]
        self.count = 0
        #: Whether any replay (rule 1) was found.
        self.replay = False
        self.requests_checked = 0

    def add(self, groups: list[RequestRows]) -> None:
        """Check one batch of requests."""
        for g in groups:
            self.requests_checked += 1
            for i, rule in enumerate(_RULES):
                found = rule(g)
                if not found:
                    continue
                self.count += len(found)
                self.replay = self.replay or i == 0
                room = MAX_KEPT - len(self._kept[i])
                self._kept[i].extend(found[:max(room, 0)])

    @property
    def problems(self) -> list[str]:
        """The kept messages, replays first, then rules 2 to 6."""
        return [p for kept in self._kept for p in kept]

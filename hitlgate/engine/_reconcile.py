"""Hold the state tables against the audit chain (part of ``audit verify``).

The hash chain is the tamper-evident record; the tables are what the engine
acts on. Someone with write access to the database can edit a table without
touching the chain: delete a ``consumed_warrants`` row so a warrant runs
twice, insert a vote row, set a request back to ``granted``. Once the chain
itself has verified, :func:`contradictions` lists every place where the
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
   gone.

Every event the engine appends for a request carries the request's status
after the change (``payload.status``), which is what makes rule 4 possible.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from hitlgate.engine.audit import AuditEvent
from hitlgate.engine.store import StateSnapshot

VOTE_KINDS = {"approved": "approve", "rejected": "reject"}


def replays(events: Iterable[AuditEvent]) -> list[str]:
    """Warrant ids, and requests, that the chain shows consumed more than once (rule 1)."""
    out: list[str] = []
    by_jti: dict[str, list[AuditEvent]] = defaultdict(list)
    by_request: dict[str, list[AuditEvent]] = defaultdict(list)
    for e in events:
        if e.kind == "consumed":
            by_jti[str(e.payload.get("jti"))].append(e)
            by_request[str(e.request_id)].append(e)
    for jti, evs in by_jti.items():
        if len(evs) > 1:
            seqs = ", ".join(str(e.seq) for e in evs)
            out.append(f"warrant {jti} was consumed {len(evs)} times (events {seqs}): a replay got through")
    for rid, evs in by_request.items():
        jtis = {str(e.payload.get("jti")) for e in evs}
        if len(jtis) > 1:
            out.append(f"request {rid} had {len(jtis)} different warrants consumed: it was executed more than once")
    return out


def _consumption_problems(events: list[AuditEvent], consumed_rows: set[tuple[str, str]]) -> list[str]:
    out: list[str] = []
    chain = {(str(e.request_id), str(e.payload.get("jti"))): e for e in events if e.kind == "consumed"}
    for key, e in sorted(chain.items()):
        if key not in consumed_rows:
            out.append(
                f"warrant {key[1]} of request {key[0]} is consumed in the chain (event {e.seq}) but its "
                "consumed_warrants row is missing: the warrant was un-consumed in the database"
            )
    for rid, jti in sorted(consumed_rows - set(chain)):
        out.append(f"consumed_warrants holds warrant {jti} of request {rid}, which the chain never shows consumed")
    return out


def _vote_problems(events: list[AuditEvent], votes: Iterable[tuple[str, str, str, str]]) -> list[str]:
    out: list[str] = []
    chain: dict[tuple[str, str], AuditEvent] = {}
    for e in events:
        if e.kind in VOTE_KINDS:
            chain[(str(e.request_id), str(e.payload.get("approver")))] = e
    seen: set[tuple[str, str]] = set()
    for rid, approver, verdict, statement in votes:
        key = (rid, approver)
        seen.add(key)
        found = chain.get(key)
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
    for key, e in sorted(chain.items()):
        if key not in seen:
            out.append(f"request {key[0]}: the vote by {key[1]} (event {e.seq}) is missing from the votes table")
    return out


def _request_problems(events: list[AuditEvent], snapshot: StateSnapshot) -> list[str]:
    out: list[str] = []
    proposed: dict[str, AuditEvent] = {}
    decided: dict[str, AuditEvent] = {}
    last_status: dict[str, AuditEvent] = {}
    issued: dict[str, AuditEvent] = {}
    for e in events:
        if e.request_id is None:
            continue
        if e.kind == "proposed":
            proposed.setdefault(e.request_id, e)
        elif e.kind == "decided":
            decided.setdefault(e.request_id, e)
        elif e.kind == "warrant_issued":
            issued[e.request_id] = e
        if "status" in e.payload:
            last_status[e.request_id] = e
    for rid, status, tier, digest in snapshot.requests:
        p = proposed.get(rid)
        if p is None:
            out.append(f"request {rid} has no proposed event in the chain: it was inserted into the database")
            continue
        if p.payload.get("action_digest") != digest:
            out.append(f"request {rid}: its action digest differs from the proposed event {p.seq}")
        d = decided.get(rid)
        if d is None or d.payload.get("tier") != tier:
            where = f"the decided event {d.seq}" if d is not None else "the chain (no decided event)"
            out.append(f"request {rid}: its tier {tier} differs from {where}: the tier was rewritten")
        last = last_status.get(rid)
        if last is not None and last.payload.get("status") != status:
            out.append(
                f"request {rid} is {status} in the database, but its last event ({last.kind}, seq {last.seq}) "
                f"left it {last.payload.get('status')}"
            )
    rows = dict(snapshot.warrants)
    for rid, e in sorted(issued.items()):
        if rows.get(rid) != e.payload.get("jti"):
            out.append(f"request {rid}: its warrants row differs from the warrant_issued event {e.seq}")
    for rid, jti in sorted(rows.items()):
        if rid not in issued:
            out.append(f"request {rid}: the warrants row {jti} has no warrant_issued event in the chain")
    return out


def contradictions(events: list[AuditEvent], snapshot: StateSnapshot) -> list[str]:
    """Every contradiction between the tables and a verified chain (see module docstring); empty when none."""
    return [
        *replays(events),
        *_consumption_problems(events, set(snapshot.consumed)),
        *_request_problems(events, snapshot),
        *_vote_problems(events, snapshot.votes),
    ]


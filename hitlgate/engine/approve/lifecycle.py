"""The request lifecycle: an explicit state machine.

Every request the engine stores is in exactly one of these states::

    (proposed) ──▶ pending ──▶ granted ──▶ executed
         │            │           │    ──▶ execution_failed
         │            │           │    ──▶ execution_unknown
         │            │           ├──▶ revoked
         │            │           └──▶ expired
         │            ├──▶ rejected
         │            ├──▶ expired
         │            └──▶ revoked
         ├──▶ granted   (auto_allow: granted at once)
         └──▶ denied    (deny: stored, never granted)

Rules:

1. A new request enters ``pending`` when its tier needs approval,
   ``granted`` when its tier is ``auto_allow``, and ``denied`` when its tier
   is ``deny``. Nothing else is a legal initial state.
2. ``pending`` becomes ``granted`` only when the quorum is met, ``rejected``
   on the first eligible rejection, ``expired`` when its approval window
   closes first, and ``revoked`` when an eligible person withdraws it.
3. ``granted`` becomes ``executed``, ``execution_failed`` or
   ``execution_unknown`` once the guard has consumed its warrant and the
   action has returned, raised, or been interrupted; ``revoked`` while its
   warrant is not yet consumed; ``expired`` when its warrant lapsed unused,
   or when its approval window closed before any warrant was issued.
4. ``denied``, ``rejected``, ``expired``, ``revoked``, ``executed``,
   ``execution_failed`` and ``execution_unknown`` are final: nothing leaves
   them. In particular a denied request can never be granted, and a
   rejection cannot be overturned by later approvals.
5. Any other move raises :class:`~hitlgate.errors.IllegalTransition`; the
   caller never proceeds silently.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from hitlgate.engine._time import format_time
from hitlgate.errors import IllegalTransition

if TYPE_CHECKING:
    from hitlgate.engine.ledger.store import Request, WarrantRecord

PENDING = "pending"
GRANTED = "granted"
DENIED = "denied"
REJECTED = "rejected"
EXPIRED = "expired"
REVOKED = "revoked"
EXECUTED = "executed"
EXECUTION_FAILED = "execution_failed"
EXECUTION_UNKNOWN = "execution_unknown"

STATES = (
    PENDING,
    GRANTED,
    DENIED,
    REJECTED,
    EXPIRED,
    REVOKED,
    EXECUTED,
    EXECUTION_FAILED,
    EXECUTION_UNKNOWN,
)

#: The state a new request enters, by decision tier (rule 1).
INITIAL_BY_TIER = {
    "auto_allow": GRANTED,
    "single_approval": PENDING,
    "dual_approval": PENDING,
    "deny": DENIED,
}

#: The legal moves (rules 2 and 3); anything absent is illegal.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({GRANTED, REJECTED, EXPIRED, REVOKED}),
    GRANTED: frozenset({EXECUTED, EXECUTION_FAILED, EXECUTION_UNKNOWN, REVOKED, EXPIRED}),
    DENIED: frozenset(),
    REJECTED: frozenset(),
    EXPIRED: frozenset(),
    REVOKED: frozenset(),
    EXECUTED: frozenset(),
    EXECUTION_FAILED: frozenset(),
    EXECUTION_UNKNOWN: frozenset(),
}

#: States nothing leaves (rule 4).
FINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)

#: States in which an approval or rejection may still be recorded.
OPEN_FOR_VOTES = frozenset({PENDING})

#: Outcomes the guard records after running an action.
OUTCOMES = frozenset({EXECUTED, EXECUTION_FAILED, EXECUTION_UNKNOWN})

#: The words an executor reports an outcome with (HTTP ``outcome``, ``hitlgate outcome --outcome``), and the
#: states they record (:data:`OUTCOME_WORDS` below is the other way round).
OUTCOMES_BY_WORD = {"executed": EXECUTED, "failed": EXECUTION_FAILED, "unknown": EXECUTION_UNKNOWN}

#: Bidirectional embedding, override and isolate characters (U+202A-U+202E, U+2066-U+2069): text that reads
#: otherwise than it is stored. ``str.isprintable`` already refuses them; named here so no change of that loses them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def plain_text(value: str) -> bool:
    """Whether ``value`` is printable text, newlines and tabs allowed (no escapes, carriage returns or bidi).

    An outcome's detail becomes the request's ``status_reason``, which
    ``hitlgate show`` and the console print: it must not rewrite a terminal
    or fake a line.
    """
    return all(map(_plain_char, value))


def as_plain_text(value: str) -> str:
    """``value`` with every character :func:`plain_text` refuses replaced by a space (as notifications show it)."""
    return "".join(ch if _plain_char(ch) else " " for ch in value)


def _plain_char(ch: str) -> bool:
    return (ch.isprintable() or ch in "\n\t") and ch not in _BIDI_CONTROLS


def initial_state(tier: str) -> str:
    """The state a new request with decision ``tier`` enters (rule 1)."""
    try:
        return INITIAL_BY_TIER[tier]
    except KeyError:
        raise IllegalTransition(f"no request may be created with unknown tier {tier!r}") from None


def check_transition(current: str, target: str) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is a legal move."""
    if current not in TRANSITIONS:
        raise IllegalTransition(f"unknown request state {current!r}")
    if target not in TRANSITIONS[current]:
        if current in FINAL:
            raise IllegalTransition(f"the request is {current}, a final state; it cannot become {target}")
        raise IllegalTransition(f"a {current} request cannot become {target}")


def is_final(state: str) -> bool:
    """Whether nothing can happen to a request in ``state`` any more."""
    return state in FINAL


#: How an executor's outcome reads in a request's warrant state (CLI and HTTP API).
OUTCOME_WORDS = {EXECUTED: "executed", EXECUTION_FAILED: "failed", EXECUTION_UNKNOWN: "unknown"}


def warrant_state(req: Request, record: WarrantRecord | None, now: datetime) -> dict[str, Any]:
    """Where the request's warrant stands: ``none``, ``issued``, ``expired`` or ``consumed``, plus the outcome.

    The outcome (``executed``, ``failed``, ``unknown``) is what the executor
    reported through the guard; None until it reports.
    """
    if record is None:
        return {"state": "none"}
    if record.consumed_at is not None:
        state = "consumed"
    elif record.expires_at <= now:
        state = "expired"
    else:
        state = "issued"
    return {
        "state": state,
        "jti": record.jti,
        "issued_at": format_time(record.issued_at),
        "expires_at": format_time(record.expires_at),
        "consumed_at": format_time(record.consumed_at) if record.consumed_at is not None else None,
        "outcome": OUTCOME_WORDS.get(req.status),
    }

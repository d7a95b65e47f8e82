"""The error hierarchy of hitlgate, and the CLI's exit-code contract.

Every error the engine raises on purpose derives from :class:`HitlgateError`
and carries a message a user can act on, a stable machine-readable ``code``
(``invalid_proposal``, ``replay``, ``policy_broken``, ...) and the exit code
the CLI uses for it. The classes are grouped by who is at fault (bad input,
policy, approval, storage, backend), following python-tuf's
``api/exceptions.py``. The CLI root catches :class:`HitlgateError` once,
prints it (as ``{"error": {...}}`` under ``--json``) and exits with
:attr:`HitlgateError.exit_code`.

Exit codes, one table for every command (also in ``hitlgate --help`` and
the README):

====  =====================================================================
0     ok; the action is allowed (auto_allow, granted, a valid warrant)
1     operational error (storage, backend unreachable, internal)
2     usage error or invalid input (the caller's document or argument)
3     denied, rejected or refused (a deny decision, a rejected request,
      a refused approval or warrant, a replay, a failed verification)
4     pending or timed out (approval still needed, ``wait`` ran out)
5     policy broken: the pack does not load or compile, so the engine
      failed closed
====  =====================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_PENDING = 4
EXIT_POLICY_BROKEN = 5

#: The exit-code table, in words, for ``--help`` texts and the README.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "ok / allowed",
    EXIT_ERROR: "operational error (storage, backend, internal)",
    EXIT_USAGE: "usage error or invalid input",
    EXIT_REFUSED: "denied, rejected or refused (including replay and failed verification)",
    EXIT_PENDING: "pending approval or timed out",
    EXIT_POLICY_BROKEN: "policy broken (the engine failed closed)",
}


class HitlgateError(Exception):
    """Base class of every error hitlgate raises on purpose.

    ``code`` is a stable identifier an agent can program against; a subclass
    sets a default and a raise site may name a more precise one
    (``InvalidWarrant("...", code="replay")``). ``problems`` lists one line
    per problem when there are several.
    """

    #: Exit code the CLI uses for this kind of error.
    exit_code: int = EXIT_ERROR
    #: Stable machine-readable code for this kind of error.
    code: str = "error"

    def __init__(self, message: str = "", *, code: str | None = None, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.problems: tuple[str, ...] = tuple(problems)

    @property
    def message(self) -> str:
        """The human-readable message (without the code)."""
        return str(self)

    def to_json(self) -> dict[str, Any]:
        """The error as the ``{"error": {...}}`` document the CLI prints under ``--json``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message, "exit_code": self.exit_code}
        if self.problems:
            body["problems"] = list(self.problems)
        return {"error": body}


class InputError(HitlgateError):
    """The caller handed over a bad document or argument (their fault)."""

    exit_code = EXIT_USAGE
    code = "invalid_input"


def _code_of(what: str) -> str:
    """``invalid_`` and the leading lowercase words of ``what`` ("audit event 5" -> ``invalid_audit_event``)."""
    words = []
    for word in what.lower().split():
        if not word.isascii() or not word.isalpha():
            break
        words.append(word)
    return "_".join(["invalid", *words]) if words else "invalid_input"


class ValidationError(InputError):
    """A document failed validation (JSON Schema, limits, encoding, syntax).

    ``problems`` holds one message per problem, each naming the JSON path
    of the offending field ("action.type: 'x' is not one of [...]"). The
    code is ``invalid_<what>`` (``invalid_proposal``) unless given, built
    from the leading words of ``what`` only: a value named in it ("audit
    event 5", "policy pack 'x'") stays in the message, never in the code,
    so the code is one of a fixed set.
    """

    def __init__(self, what: str, problems: Sequence[str], *, code: str | None = None) -> None:
        self.what = what
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"invalid {what}: {len(problems)} problem(s)\n{lines}",
            code=code or _code_of(what),
            problems=problems,
        )


class NotFoundError(InputError):
    """A named request, key or file does not exist."""

    code = "not_found"


class ConfigError(InputError):
    """The configuration file or a path it names is unusable."""

    code = "config_error"


class PolicyError(HitlgateError):
    """The policy pack or inventory is broken (the architect's fault)."""

    exit_code = EXIT_POLICY_BROKEN
    code = "policy_broken"


class BackendUnavailable(HitlgateError):  # noqa: N818 - reads as a state, like ConnectionRefused.
    """The policy backend could not answer (error, timeout, unreachable)."""

    code = "backend_unavailable"


class ApprovalError(HitlgateError):
    """An approval or rejection was refused (signature, eligibility, state)."""

    exit_code = EXIT_REFUSED
    code = "approval_refused"


class PendingApproval(ApprovalError):  # noqa: N818 - names the state, like IllegalTransition.
    """Asked for something that needs the quorum (a warrant) while approvals are still missing."""

    exit_code = EXIT_PENDING
    code = "pending"


class StorageError(HitlgateError):
    """The state store failed or holds something it should not."""

    code = "storage_error"


class IllegalTransition(HitlgateError):  # noqa: N818 - names the refused event.
    """A request was asked to move to a state its lifecycle forbids."""

    exit_code = EXIT_REFUSED
    code = "illegal_transition"


class InvalidWarrant(HitlgateError):  # noqa: N818 - the name mirrors cryptography's InvalidToken.
    """Any warrant failure. Deliberately opaque: one class for every reason.

    The reason is in the message, the ``code`` (``replay``,
    ``digest_mismatch``, ``expired``, ...) and the audit log, never in a
    subclass a caller could forget to catch.
    """

    exit_code = EXIT_REFUSED
    code = "invalid_warrant"


class AuditChainError(HitlgateError):
    """The audit chain failed verification; the message names the first bad event."""

    exit_code = EXIT_REFUSED
    code = "audit_chain_broken"

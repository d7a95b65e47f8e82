"""The error hierarchy of hitlgate.

Every error the engine raises on purpose derives from :class:`HitlgateError`
and carries a message a user can act on. The classes are grouped by who is at
fault (bad input, policy, approval, storage, backend), following python-tuf's
``api/exceptions.py``. The CLI root catches :class:`HitlgateError` once,
prints it and exits non-zero (exit code :attr:`HitlgateError.exit_code`).
"""

from __future__ import annotations

from collections.abc import Sequence


class HitlgateError(Exception):
    """Base class of every error hitlgate raises on purpose."""

    #: Exit code the CLI uses for this kind of error.
    exit_code: int = 1


class InputError(HitlgateError):
    """The caller handed over a bad document or argument (their fault)."""

    exit_code = 2


class ValidationError(InputError):
    """A document failed JSON Schema validation.

    ``problems`` holds one message per problem, each naming the JSON path
    of the offending field ("action.type: 'x' is not one of [...]").
    """

    def __init__(self, what: str, problems: Sequence[str]) -> None:
        self.what = what
        self.problems: tuple[str, ...] = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid {what}: {len(self.problems)} problem(s)\n{lines}")


class ConfigError(InputError):
    """The configuration file or a path it names is unusable."""


class PolicyError(HitlgateError):
    """The policy pack or inventory is broken (the architect's fault)."""


class BackendUnavailable(HitlgateError):  # noqa: N818 - reads as a state, like ConnectionRefused.
    """The policy backend could not answer (error, timeout, unreachable)."""


class ApprovalError(HitlgateError):
    """An approval or rejection was refused (signature, eligibility, state)."""


class StorageError(HitlgateError):
    """The state store failed or holds something it should not."""


class IllegalTransition(HitlgateError):  # noqa: N818 - names the refused event.
    """A request was asked to move to a state its lifecycle forbids."""


class InvalidWarrant(HitlgateError):  # noqa: N818 - the name mirrors cryptography's InvalidToken.
    """Any warrant failure. Deliberately opaque: one class for every reason.

    The reason is in the message and in the audit log, never in a subclass a
    caller could forget to catch.
    """


class AuditChainError(HitlgateError):
    """The audit chain failed verification; the message names the first bad event."""

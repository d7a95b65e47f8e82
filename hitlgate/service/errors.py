"""Errors as HTTP responses: ``{"error": {"code", "message", "problems"}}`` with the CLI's stable codes.

One table maps each :class:`~hitlgate.errors.HitlgateError` class to an HTTP
status, by who is at fault (the same grouping as the CLI's exit codes):
the caller's input is a 4xx, a refusal a 403 or 409, the service's own
trouble (storage, backend, broken policy) a 503. Anything else is a bug and
becomes a 500 with code ``internal``, never a traceback in the body.
"""

from __future__ import annotations

import math
from typing import Any

from hitlgate.engine.keys.apikeys import ApiKeyError
from hitlgate.errors import (
    EXIT_ERROR,
    EXIT_REFUSED,
    ApprovalError,
    AuditChainError,
    BackendUnavailable,
    ConfigError,
    HitlgateError,
    IllegalTransition,
    InputError,
    InvalidWarrant,
    NotFoundError,
    PendingApproval,
    PolicyError,
    StorageError,
)


class Forbidden(HitlgateError):  # noqa: N818 - names the refusal, like the HTTP status.
    """The API key is valid but its role may not do this (HTTP 403, code ``forbidden``)."""

    exit_code = EXIT_REFUSED
    code = "forbidden"


class TooLarge(InputError):  # noqa: N818 - names the refusal, like the HTTP status.
    """A request body over the configured limit (HTTP 413, code ``input_too_large``)."""

    code = "input_too_large"


class RateLimited(HitlgateError):  # noqa: N818 - names the state, like PendingApproval.
    """This API key sent more requests than its rate allows (HTTP 429, code ``rate_limited``)."""

    exit_code = EXIT_ERROR
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float = 1.0, code: str | None = None) -> None:
        """``retry_after``: seconds until a retry can succeed (the ``Retry-After`` header, rounded up)."""
        super().__init__(message, code=code)
        self.retry_after = max(1, math.ceil(retry_after))


# Most specific first: the first matching class decides.
_STATUS: tuple[tuple[type[HitlgateError], int], ...] = (
    (ApiKeyError, 401),
    (Forbidden, 403),
    (TooLarge, 413),
    (RateLimited, 429),
    (NotFoundError, 404),
    (ConfigError, 503),
    (InputError, 400),
    (PendingApproval, 409),
    (IllegalTransition, 409),
    (ApprovalError, 403),
    (InvalidWarrant, 403),
    (PolicyError, 503),
    (BackendUnavailable, 503),
    (StorageError, 503),
    (AuditChainError, 503),
)

#: Codes whose status differs from their class's.
_CODE_STATUS = {"idempotency_conflict": 409}

#: Every status an endpoint may answer with an error document (for the OpenAPI document).
ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 429, 503)


def status_of(exc: HitlgateError) -> int:
    """The HTTP status for ``exc``."""
    if exc.code in _CODE_STATUS:
        return _CODE_STATUS[exc.code]
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 503


def error_body(code: str, message: str, problems: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """The error document: always the three keys, ``problems`` possibly empty."""
    return {"error": {"code": code, "message": message, "problems": list(problems)}}


def body_of(exc: HitlgateError) -> dict[str, Any]:
    """The error document of ``exc`` (its message, code and problems, as the CLI's ``--json`` prints them)."""
    return error_body(exc.code, exc.message, exc.problems)


#: The OpenAPI schema of the error document.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "problems"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "problems": {"type": "array", "items": {"type": "string"}},
            },
        }
    },
}

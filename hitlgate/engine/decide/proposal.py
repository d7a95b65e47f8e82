"""Proposals and the action digest.

A proposal is validated against ``schemas/proposal.schema.json`` before it
is used for anything. The *action digest* binds approvals and warrants to
exactly one action: ``sha256:`` + hex SHA-256 over the RFC 8785 canonical
JSON of the ``action`` object, so any change to type, target or parameters
changes it.

Hostile input is stopped before validation: :meth:`Proposal.from_json`
refuses a document over ``limits.proposal_bytes`` before parsing it and
measures its nesting without recursion; :meth:`Proposal.from_dict` (also
the SDK's entry) copies the document with an explicit stack into exact
JSON types, refusing one nested deeper than ``limits.max_depth``, larger
than a proposal of ``limits.proposal_bytes`` could be, with non-string
keys, strings holding NUL or lone surrogates, or values that are not JSON;
a ``str`` subclass (a str Enum) is kept as its characters. Only then does
the schema, whose own
limits (string and array lengths, key counts, the depth of ``parameters``
and ``evidence``) are the contract, see it.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, final

import rfc8785

from hitlgate.engine._canonical import dumps as canonical_dumps
from hitlgate.engine._safeparse import parse_json, plain_copy
from hitlgate.engine.decide import schemas
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits
from hitlgate.errors import ValidationError


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 (JCS) canonical JSON bytes."""
    try:
        return canonical_dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ValidationError("document", [f"(document): cannot be canonicalised: {exc}"]) from exc


def action_canonical(action: Mapping[str, Any]) -> bytes:
    """The exact bytes :func:`action_digest` hashes: the RFC 8785 canonical JSON of an action object.

    The console shows these bytes to approvers, so they see what a warrant
    binds, never a re-serialisation that could differ from it.
    """
    return canonical_json(dict(action))


def action_digest(action: Mapping[str, Any]) -> str:
    """Return ``sha256:<hex>`` over the canonical JSON of an action object."""
    return "sha256:" + hashlib.sha256(action_canonical(action)).hexdigest()


#: Room in the character budget for the ``requester`` the HTTP service sets from the caller's identity.
_REQUESTER_CHARS = 1024


def _plain_proposal(document: Any, limits: Limits) -> dict[str, Any]:
    """``document`` checked, copied into exact JSON types (:func:`plain_copy`) and validated against the schema."""
    schemas.require_mapping(document, "proposal")
    # A JSON text of N bytes holds at most N/2 values ("[0,0,...]") and N
    # characters, so a dict may hold no more than a file of the byte limit could
    # (the characters plus the requester the HTTP service fills in after the body's size was checked).
    plain: dict[str, Any] = plain_copy(document, what="proposal", max_depth=limits.max_depth,
                                       max_values=limits.proposal_bytes // 2,
                                       max_chars=limits.proposal_bytes + _REQUESTER_CHARS)
    # Exact JSON types only, which the compiled validator reads as the Python ones do.
    schemas.validate("proposal", plain, plain=True)
    return plain


@final
@dataclass(frozen=True)
class Proposal:
    """A validated proposal. Construct it with :meth:`from_dict`.

    ``Proposal(document)`` works too, with the default limits: the document
    is checked and copied as :meth:`from_dict` does, so a proposal always
    holds a private copy in exact JSON types. Final: :meth:`from_dict`
    builds the object without ``__init__`` (its document is checked there,
    with the caller's limits), which a subclass's own ``__post_init__``
    checks or fields would silently miss.
    """

    document: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "document", _plain_proposal(self.document, DEFAULT_LIMITS))

    @classmethod
    def from_dict(cls, document: Any, *, limits: Limits = DEFAULT_LIMITS) -> Proposal:
        """Validate ``document`` and wrap a private, plain JSON copy of it (see :func:`plain_copy`)."""
        proposal = object.__new__(cls)
        object.__setattr__(proposal, "document", _plain_proposal(document, limits))
        return proposal

    @classmethod
    def from_json(cls, text: str | bytes, *, limits: Limits = DEFAULT_LIMITS, label: str = "(document)") -> Proposal:
        """Parse and validate a JSON proposal (bytes are refused over ``limits.proposal_bytes`` before parsing)."""
        size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
        if size > limits.proposal_bytes:
            raise ValidationError(
                "proposal",
                [f"{label}: larger than the limit of {limits.proposal_bytes} bytes ({size} bytes); "
                 "raise limits.proposal_bytes in hitlgate.yaml if this document is genuine"],
                code="input_too_large",
            )
        doc = parse_json(text, what="proposal", label=label, max_depth=limits.max_depth)
        return cls.from_dict(doc, limits=limits)

    @property
    def action(self) -> Mapping[str, Any]:
        """The proposed action (type, target, parameters)."""
        action: Mapping[str, Any] = self.document["action"]
        return action

    @property
    def action_type(self) -> str:
        """The action type, e.g. ``rotate_api_key``."""
        return str(self.action["type"])

    @property
    def target(self) -> str:
        """The inventory id the action is aimed at."""
        return str(self.action["target"])

    @property
    def requester(self) -> str:
        """The id of whoever proposed the action."""
        return str(self.document["requester"]["id"])

    @property
    def digest(self) -> str:
        """The action digest that approvals and warrants are bound to."""
        return action_digest(self.action)

    def to_dict(self) -> dict[str, Any]:
        """Return a deep copy of the proposal document."""
        return copy.deepcopy(dict(self.document))

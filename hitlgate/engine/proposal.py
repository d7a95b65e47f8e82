"""Proposals and the action digest.

A proposal is validated against ``schemas/proposal.schema.json`` before it
is used for anything. The *action digest* binds approvals and warrants to
exactly one action: ``sha256:`` + hex SHA-256 over the RFC 8785 canonical
JSON of the ``action`` object, so any change to type, target or parameters
changes it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

from hitlgate.engine import schemas
from hitlgate.errors import ValidationError


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 (JCS) canonical JSON bytes."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ValidationError("document", [f"(document): cannot be canonicalised: {exc}"]) from exc


def action_digest(action: Mapping[str, Any]) -> str:
    """Return ``sha256:<hex>`` over the canonical JSON of an action object."""
    return "sha256:" + hashlib.sha256(canonical_json(dict(action))).hexdigest()


@dataclass(frozen=True)
class Proposal:
    """A validated proposal. Construct it with :meth:`from_dict`."""

    document: Mapping[str, Any]

    def __post_init__(self) -> None:
        schemas.validate("proposal", self.document)

    @classmethod
    def from_dict(cls, document: Any) -> Proposal:
        """Validate ``document`` and wrap a private deep copy of it."""
        schemas.require_mapping(document, "proposal")
        return cls(copy.deepcopy(dict(document)))

    @classmethod
    def from_json(cls, text: str | bytes) -> Proposal:
        """Parse and validate a JSON proposal."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                "proposal", [f"(document): malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
            ) from exc
        return cls.from_dict(doc)

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

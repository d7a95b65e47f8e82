"""Limits on the documents hitlgate reads from outside.

Every document that crosses a trust boundary (a proposal, a signed approval,
a warrant, an inventory or scenario file, the configuration, a line of an
audit export) has a byte limit that is checked before the document is
parsed, and every JSON or YAML document has a nesting limit that is checked
without recursion. The structural limits of a proposal (string lengths,
array lengths, key counts, the depth of ``parameters`` and ``evidence``)
live in ``schemas/proposal.schema.json``: they are part of the contract.

The byte limits and the nesting limit are set under ``limits:`` in
``hitlgate.yaml`` (see ``schemas/config.schema.json`` and the README's
"Limits" section). The defaults are generous for real documents and small
enough that a hostile one costs milliseconds and kilobytes, not seconds and
gigabytes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

KIB = 1024
MIB = 1024 * KIB

#: The configuration file is read before any limit is configured, so its
#: own limit is fixed.
CONFIG_MAX_BYTES = 1 * MIB


@dataclass(frozen=True)
class Limits:
    """Byte and nesting limits for documents read from outside (``limits:`` in ``hitlgate.yaml``)."""

    #: A proposal (``decide``, ``propose``) or the action file of ``verify``.
    proposal_bytes: int = 64 * KIB
    #: A signed approval or rejection statement (``approve --signed``).
    approval_bytes: int = 16 * KIB
    #: A warrant (compact JWS) read from a file, stdin or the command line.
    warrant_bytes: int = 128 * KIB
    #: A JWKS document (``audit verify --jwks``).
    jwks_bytes: int = 1 * MIB
    #: One inventory YAML file.
    inventory_file_bytes: int = 64 * MIB
    #: One scenario YAML file.
    scenario_file_bytes: int = 16 * MIB
    #: One line of an audit export (``audit verify --file``).
    audit_line_bytes: int = 1 * MIB
    #: Nesting depth of any JSON or YAML document (objects and arrays).
    max_depth: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"limits.{f.name} must be a positive integer, got {value!r}")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Limits:
        """Limits from the (schema-validated) ``limits:`` mapping of a config file."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


DEFAULT_LIMITS = Limits()

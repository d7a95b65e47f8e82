"""The policy backend interface.

A backend evaluates ``data.hitlgate.decision`` for one input document and
says which policy revision answered. Callers (the :class:`~hitlgate.engine.decider.Decider`)
never see which engine runs underneath: the embedded regopy backend
(:mod:`hitlgate.engine._regopy`) is the default, an OPA server backend plugs
in behind the same protocol.

Contract for implementations: return ``(document, revision)`` where
``document`` is the raw decision object, or ``None`` when the rule is
undefined; raise :class:`~hitlgate.errors.PolicyError` for a broken policy and
:class:`~hitlgate.errors.BackendUnavailable` for anything that kept the
engine from answering. Never return a default decision: failing closed is the
caller's job, done in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class PolicyBackend(Protocol):
    """Evaluates the decision rule of a policy pack."""

    #: Short name for logs and `hitlgate doctor` ("embedded", "opa").
    name: str

    def evaluate(self, input_document: Mapping[str, Any]) -> tuple[Any, str]:
        """Return ``(decision document or None if undefined, policy revision)``."""
        ...

    @property
    def expected_revision(self) -> str:
        """The revision of the pack this backend is meant to serve."""
        ...

    def close(self) -> None:
        """Release connections or interpreters."""
        ...

"""The policy backend interface.

A backend evaluates ``data.hitlgate.decision`` for one input document and
says which policy revision answered. Callers (the :class:`~hitlgate.engine.decide.decider.Decider`)
never see which engine runs underneath: the embedded regopy backend
(:mod:`hitlgate.engine.decide._regopy`) is the default, an OPA server backend plugs
in behind the same protocol.

Contract for implementations: return ``(document, revision)`` where
``document`` is the raw decision object, or ``None`` when the rule is
undefined; raise :class:`~hitlgate.errors.PolicyError` for a broken policy and
:class:`~hitlgate.errors.BackendUnavailable` for anything that kept the
engine from answering. Never return a default decision: failing closed is the
caller's job, done in one place.

Facts: both backends evaluate ``{**proposal, "inventory": N}`` where N is
the target's neighbourhood from a :class:`~hitlgate.engine.decide.facts.FactIndex`
(:func:`with_facts`), and report the revision of the modules and of the
inventory that N came from, combined. The proposal was validated first, and
its schema admits no top-level ``inventory``; the key is set last anyway, so
nothing a caller sends can stand in for a fact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hitlgate.engine.decide.facts import FactIndex


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


def with_facts(
    input_document: Mapping[str, Any], index: FactIndex, sections: frozenset[str] | None = None
) -> tuple[dict[str, Any], str]:
    """``({**input_document, "inventory": neighbourhood}, inventory revision)`` for the named target.

    The neighbourhood and the revision are read together, so the revision
    names the inventory the facts came from even while it changes.
    ``sections`` limits the neighbourhood to the sections the policy may
    read (:func:`hitlgate.engine.decide._regoscan.inventory_sections_read`; None:
    all): a section no rule can reach cannot change a decision, and leaving
    it out makes the input smaller for both engines.
    """
    action = input_document.get("action")
    target = action.get("target") if isinstance(action, Mapping) else None
    neighbourhood, revision = index.snapshot(target if isinstance(target, str) else "", sections)
    return {**input_document, "inventory": neighbourhood}, revision

"""Deciding one proposal: validate, enrich, evaluate, and fail closed.

``Decider.decide`` is the single place where a backend's failure becomes a
decision. Bad *input* raises :class:`~hitlgate.errors.ValidationError` (the
caller must fix the proposal; nothing is decided or stored). Anything that
goes wrong on the policy side - a compile error, an evaluation error, a
timeout, an undefined or malformed result - yields tier ``deny`` with the
failure as its reason and in ``fail_closed.code``: ``policy_broken`` for a
:class:`~hitlgate.errors.PolicyError` or an undefined decision,
``backend_unavailable`` for any other engine error, ``internal`` for a bug.
Never ``auto_allow``.

Enrichment: the proposal names a target; after the proposal is validated,
the backend adds the facts about it (the target's record, the workloads that
use it, its partner, their owning teams and those teams' approvers, whether
it is protected) to the input under ``inventory``, looked up by key in the
trusted inventory's :class:`~hitlgate.engine.decide.facts.FactIndex`
(:func:`hitlgate.engine.decide.backends.with_facts`). The proposal schema admits no
top-level ``inventory``, so nothing in the proposal can claim a fact about
its target, and the decision's ``policy_revision`` covers the modules and
the inventory revision the facts came from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from hitlgate.engine.config import Config
from hitlgate.engine.decide.backends import PolicyBackend
from hitlgate.engine.decide.decision import Decision
from hitlgate.engine.decide.proposal import Proposal
from hitlgate.errors import ConfigError, HitlgateError, PolicyError

log = logging.getLogger(__name__)


def backend_from_config(config: Config) -> PolicyBackend:
    """Build the backend the configuration names."""
    from hitlgate.engine.decide.facts import facts_from_config

    if config.backend.kind == "embedded":
        from hitlgate.engine.decide._regopy import RegopyBackend

        return RegopyBackend(
            config.policy_dir, list(config.data_paths), limits=config.limits, facts=facts_from_config(config),
            decision_cache_size=config.backend.decision_cache,
        )
    if config.backend.kind == "opa":
        try:
            from hitlgate.engine.decide._opa import OpaBackend  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:  # pragma: no cover - present once the OPA backend ships.
            raise ConfigError("the OPA backend is not available in this build") from exc
        return OpaBackend.from_config(config, facts=facts_from_config(config))  # type: ignore[no-any-return,unused-ignore]
    raise ConfigError(f"backend.kind: unknown backend {config.backend.kind!r}")


class Decider:
    """Turns proposals into decisions with one policy backend."""

    def __init__(
        self, backend: PolicyBackend, *, risk_factors: Iterable[str] = (), log_failures: bool = True
    ) -> None:
        self.backend = backend
        #: Risk factors the project declares on top of the built-in ones.
        self.risk_factors = frozenset(risk_factors)
        #: Whether each fail-closed decision is logged. A caller that reports
        #: every decision itself (``policy test``) turns this off, so one
        #: broken rule does not print the same line once per case.
        self.log_failures = log_failures

    @classmethod
    def from_config(cls, config: Config, *, log_failures: bool = True) -> Decider:
        """A decider on the backend the configuration names, with its declared risk factors."""
        return cls(backend_from_config(config), risk_factors=config.risk_factors, log_failures=log_failures)

    def decide(self, proposal: Proposal | Mapping[str, Any]) -> Decision:
        """Decide one proposal.

        Raises :class:`~hitlgate.errors.ValidationError` for a bad proposal;
        every other failure is returned as a fail-closed ``deny`` decision.
        """
        if not isinstance(proposal, Proposal):
            proposal = Proposal.from_dict(proposal)
        return self.decide_validated(proposal)

    def decide_validated(self, proposal: Proposal) -> Decision:
        """Decide a proposal that is already validated."""
        revision: str | None = None
        try:
            output, revision = self.backend.evaluate(proposal.document)
            if output is None:
                return self._fail(
                    proposal, "the policy left data.hitlgate.decision undefined for this input", revision,
                    "policy_broken",
                )
            return Decision.from_policy_output(output, revision, self.risk_factors)
        except PolicyError as exc:
            return self._fail(proposal, str(exc), revision, "policy_broken")
        except HitlgateError as exc:
            return self._fail(proposal, str(exc), revision, "backend_unavailable")
        except Exception as exc:  # noqa: BLE001 - any unexpected failure must deny, not crash open.
            log.exception("unexpected error while deciding")
            return self._fail(proposal, f"unexpected {type(exc).__name__}: {exc}", revision, "internal")

    def _fail(self, proposal: Proposal, reason: str, revision: str | None, code: str) -> Decision:
        if self.log_failures:
            log.error(
                "decision failed closed (backend=%s, action=%s, target=%s): %s",
                self.backend.name,
                proposal.action_type,
                proposal.target,
                reason,
            )
        return Decision.failed_closed(f"{self.backend.name} backend: {reason}", revision, code=code)

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()

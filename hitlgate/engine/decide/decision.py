"""Decisions: what the policy decided about one proposal.

:class:`Decision` is a frozen value object whose constructor enforces the
contract of ``schemas/decision.schema.json`` plus the invariants a schema
cannot express: an approval tier has a quorum of at least one, and a tier
that needs no approval has none. A policy output that breaks the contract
never becomes a decision; the engine fails closed with :meth:`Decision.failed_closed`.

Risk factors are part of the contract. The schema ships inside the package,
so a project cannot edit its enum; instead the schema lists the built-in
factors and a project declares its own (``risk_factors`` in
``hitlgate.yaml``). :meth:`Decision.from_policy_output` accepts exactly the
built-in and the declared ones, so a typo in a rule (``crwn_jewel``) still
fails closed instead of slipping through. A decision read back from storage
is only checked for shape: it was checked against the factors declared when
it was made.

Two durations are per decision, so a policy sets them per tier:
``ttl_seconds`` is the approval window (how long a pending request waits
for its quorum) and ``warrant_ttl_seconds`` the warrant lifetime, counted
from the grant. The window must be at least one second for a tier that
needs approval (a zero window would expire every request at once) and 0 for
``deny``. The warrant lifetime is optional: left out, the engine uses
``warrant_ttl_seconds`` from ``hitlgate.yaml`` (:meth:`Decision.warrant_lifetime`),
so a pack written before it existed keeps working. Given, it must be 10 to
3600 seconds for a tier that yields a warrant (warrants live minutes, not
hours) and 0 for ``deny``; anything else breaks the contract and fails closed.

A fail-closed decision says why in ``fail_closed: {code, reason}``: code
``policy_broken`` (the pack does not load or compile, the decision is
undefined, or the output breaks this contract), ``backend_unavailable``
(an error, timeout or unreachable backend) or ``internal`` (a bug). Only the
engine sets it: a policy output that carries the field is itself a
contract violation. A deny the policy decided has no ``fail_closed``.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from hitlgate.engine.decide import schemas
from hitlgate.errors import PolicyError, ValidationError

TIERS = ("auto_allow", "single_approval", "dual_approval", "deny")

#: Strictness order, used to refuse a warrant when the policy got stricter.
TIER_RANK = {"auto_allow": 0, "single_approval": 1, "dual_approval": 2, "deny": 3}

CONTROLS = (
    {
        "framework": "OWASP Non-Human Identity Top 10",
        "id": "NHI-07",
        "relevance": "Human approval gates reduce unsafe automation around NHI remediation and privilege changes.",
    },
    {
        "framework": "OWASP Agentic AI Top 10",
        "id": "A-03",
        "relevance": "Agentic systems need oversight before executing high-impact recommendations.",
    },
    {
        "framework": "NIST CSF 2.0",
        "id": "RS.MA",
        "relevance": "Response management emphasizes controlled, coordinated incident handling.",
    },
)

UNKNOWN_REVISION = "sha256:" + "0" * 64

#: The warrant lifetime a decision may give (seconds); the same bounds the issuer enforces.
MIN_WARRANT_TTL = 10
MAX_WARRANT_TTL = 3600

#: Why a decision failed closed (``fail_closed.code``).
FAIL_CLOSED_CODES = ("policy_broken", "backend_unavailable", "internal")


@functools.cache
def _builtin_factor_set() -> frozenset[str]:
    return frozenset(schemas.builtin_risk_factors())


def check_risk_factors(factors: Collection[str], declared: Collection[str] = ()) -> None:
    """Raise :class:`PolicyError` unless every factor is built in or declared.

    The message names each unknown factor by its position, says where to
    declare it, and suggests a known factor it is close to, so a typo
    reads as one.
    """
    builtin = _builtin_factor_set()
    if all(factor in builtin or factor in declared for factor in factors):
        return  # Every decision the engine makes passes here: the message below is built only for a bad one.
    known = [*schemas.builtin_risk_factors(), *sorted(f for f in declared if f not in builtin)]
    problems = []
    for i, factor in enumerate(factors):
        if factor in builtin or factor in declared:
            continue
        close = difflib.get_close_matches(factor, known, n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(
            f"risk_factors[{i}]: {factor!r} is neither a built-in risk factor"
            f" nor declared in hitlgate.yaml (risk_factors){hint}"
        )
    if problems:
        declared_text = ", ".join(sorted(declared)) or "none"
        raise PolicyError(
            f"invalid decision document: {'; '.join(problems)} (declared: {declared_text})", problems=problems
        )


@dataclass(frozen=True)
class QuorumSlot:
    """One required approval: a distinct person with any of ``roles`` or on any of ``teams``."""

    roles: tuple[str, ...]
    teams: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.roles and not self.teams:
            raise PolicyError(
                "a quorum slot must name at least one role or team; an empty slot would let anyone fill it"
            )

    def describe(self) -> str:
        """Human wording of who can fill this slot."""
        parts = [f"someone with the role {r}" for r in self.roles]
        parts += [f"a member of {t}" for t in self.teams]
        return " or ".join(parts)

    def to_dict(self) -> dict[str, list[str]]:
        """JSON form of the slot."""
        return {"roles": list(self.roles), "teams": list(self.teams)}


@dataclass(frozen=True)
class Quorum:
    """How many distinct approvals, and which slots must be among them."""

    required: int
    slots: tuple[QuorumSlot, ...]

    def __post_init__(self) -> None:
        if self.required < len(self.slots):
            raise PolicyError(f"quorum requires {self.required} approvals but names {len(self.slots)} slots")

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the quorum."""
        return {"required": self.required, "slots": [s.to_dict() for s in self.slots]}


@dataclass(frozen=True)
class Decision:
    """A policy decision (see ``schemas/decision.schema.json``)."""

    tier: str
    risk_factors: tuple[str, ...]
    reasons: tuple[str, ...]
    quorum: Quorum
    ttl_seconds: int
    controls: tuple[Mapping[str, str], ...]
    blast_radius: Mapping[str, tuple[str, ...]]
    policy_revision: str
    #: ``{"code", "reason"}`` when the engine failed closed; None for a decision the policy made.
    fail_closed: Mapping[str, str] | None = None
    #: The warrant lifetime from the grant; None when the policy left it to the configuration.
    warrant_ttl_seconds: int | None = None

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise PolicyError(f"unknown tier {self.tier!r}")
        if self.fail_closed is not None and self.tier != "deny":
            raise PolicyError(f"a fail-closed decision must be deny, not {self.tier}")
        needs_approval = self.tier in ("single_approval", "dual_approval")
        if needs_approval and self.quorum.required < 1:
            raise PolicyError(f"tier {self.tier} needs a quorum of at least 1")
        if needs_approval and not self.quorum.slots:
            raise PolicyError(f"tier {self.tier} names no quorum slot; an approval anyone could give is no approval")
        if self.tier == "dual_approval" and self.quorum.required < 2:
            raise PolicyError("tier dual_approval needs a quorum of at least 2")
        if not needs_approval and self.quorum.required != 0:
            raise PolicyError(f"tier {self.tier} takes no approvals, but the quorum asks for {self.quorum.required}")
        if not self.reasons:
            raise PolicyError("a decision must give at least one reason")
        self._check_durations(needs_approval)

    def _check_durations(self, needs_approval: bool) -> None:
        """The approval window and warrant lifetime must fit the tier (see the module docstring)."""
        for name, value in (("ttl_seconds", self.ttl_seconds), ("warrant_ttl_seconds", self.warrant_ttl_seconds)):
            # bool is an int subclass; a JSON true is not a duration.
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise PolicyError(f"{name} must be an integer number of seconds, not {value!r}")
        if needs_approval and self.ttl_seconds < 1:
            raise PolicyError(
                f"tier {self.tier} has an approval window (ttl_seconds) of {self.ttl_seconds}; it needs at least 1 "
                "second, or every request would expire before anyone could approve it"
            )
        wttl = self.warrant_ttl_seconds
        if wttl is None:
            return
        if self.tier == "deny":
            if wttl != 0:
                raise PolicyError(
                    f"tier deny yields no warrant, but warrant_ttl_seconds is {wttl} (give 0 or leave it out)"
                )
        elif not MIN_WARRANT_TTL <= wttl <= MAX_WARRANT_TTL:
            raise PolicyError(
                f"tier {self.tier} gives a warrant lifetime (warrant_ttl_seconds) of {wttl}; it must be "
                f"{MIN_WARRANT_TTL} to {MAX_WARRANT_TTL} seconds (warrants live minutes, not hours)"
            )

    def warrant_lifetime(self, default: int) -> int:
        """Seconds a warrant of this decision lives from the grant: the policy's value, else ``default`` (config)."""
        return self.warrant_ttl_seconds if self.warrant_ttl_seconds is not None else default

    @property
    def needs_approval(self) -> bool:
        """Whether humans must approve before a warrant is issued."""
        return self.tier in ("single_approval", "dual_approval")

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Decision:
        """Build a decision from its JSON form, validating the contract."""
        try:
            schemas.validate("decision", doc, what="decision document")
        except ValidationError as exc:
            raise PolicyError(str(exc)) from exc
        q = doc["quorum"]
        return cls(
            tier=doc["tier"],
            risk_factors=tuple(doc["risk_factors"]),
            reasons=tuple(doc["reasons"]),
            quorum=Quorum(
                required=q["required"],
                slots=tuple(QuorumSlot(tuple(s["roles"]), tuple(s["teams"])) for s in q["slots"]),
            ),
            ttl_seconds=doc["ttl_seconds"],
            controls=tuple(dict(c) for c in doc["controls"]),
            blast_radius={k: tuple(v) for k, v in doc["blast_radius"].items()},
            policy_revision=doc["policy_revision"],
            fail_closed=dict(doc["fail_closed"]) if "fail_closed" in doc else None,
            warrant_ttl_seconds=doc.get("warrant_ttl_seconds"),
        )

    @classmethod
    def from_policy_output(
        cls, output: Any, policy_revision: str, declared_factors: Collection[str] = ()
    ) -> Decision:
        """Turn the policy's ``data.hitlgate.decision`` into a decision.

        ``declared_factors`` are the risk factors the project declares on top
        of the built-in ones. Raises :class:`PolicyError` when the output
        breaks the contract; the caller fails closed.
        """
        if not isinstance(output, Mapping):
            raise PolicyError(f"policy decision is not an object (got {type(output).__name__})")
        if "fail_closed" in output:
            # Only the engine may say it failed closed; a policy claiming it
            # could make a CI job read a deliberate deny as a broken pack.
            raise PolicyError("policy decision sets fail_closed, which only the engine may set")
        decision = cls.from_dict({**output, "policy_revision": policy_revision})
        check_risk_factors(decision.risk_factors, declared_factors)
        return decision

    @classmethod
    def failed_closed(
        cls, reason: str, policy_revision: str | None = None, *, code: str = "policy_broken"
    ) -> Decision:
        """The decision of last resort: deny, with the failure as the reason and in ``fail_closed``."""
        if code not in FAIL_CLOSED_CODES:
            raise ValueError(f"unknown fail-closed code {code!r}")
        return cls(
            tier="deny",
            risk_factors=("evaluation_error",),
            reasons=(f"fail closed: {reason}",),
            quorum=Quorum(required=0, slots=()),
            ttl_seconds=0,
            controls=tuple(dict(c) for c in CONTROLS),
            blast_radius={"workloads": (), "partners": ()},
            policy_revision=policy_revision or UNKNOWN_REVISION,
            fail_closed={"code": code, "reason": reason},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``schemas/decision.schema.json``)."""
        out: dict[str, Any] = {
            "tier": self.tier,
            "risk_factors": list(self.risk_factors),
            "reasons": list(self.reasons),
            "quorum": self.quorum.to_dict(),
            "ttl_seconds": self.ttl_seconds,
            **({} if self.warrant_ttl_seconds is None else {"warrant_ttl_seconds": self.warrant_ttl_seconds}),
            "controls": [dict(c) for c in self.controls],
            "blast_radius": {k: list(v) for k, v in self.blast_radius.items()},
            "policy_revision": self.policy_revision,
        }
        if self.fail_closed is not None:
            out["fail_closed"] = dict(self.fail_closed)
        return out

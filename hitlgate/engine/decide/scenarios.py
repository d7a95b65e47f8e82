"""The scenario corpus: policy expectations written as data.

A scenario file is YAML with a ``cases`` list; each case has ``note`` (what
it shows), ``proposal`` (a full proposal document), ``want_tier`` and
``want_factors`` (the exact set of risk factors). The same corpus is run
against every backend, like OPA's ``test/cases``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitlgate.engine._safeparse import load_yaml, read_limited
from hitlgate.engine.decide.decider import Decider
from hitlgate.engine.decide.decision import TIERS, Decision
from hitlgate.engine.decide.proposal import Proposal
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits
from hitlgate.errors import PolicyError, ValidationError

_CASE_KEYS = {"note", "proposal", "want_tier", "want_factors"}


@dataclass(frozen=True)
class Scenario:
    """One expectation: this proposal gets this tier and these factors."""

    source: str
    index: int
    note: str
    proposal: Proposal
    want_tier: str
    want_factors: frozenset[str]

    @property
    def name(self) -> str:
        """``file.yaml#3: note`` - how failures name the case."""
        return f"{self.source}#{self.index}: {self.note}"


@dataclass(frozen=True)
class ScenarioFailure:
    """A scenario whose decision differs from its expectation."""

    scenario: Scenario
    decision: Decision
    problems: tuple[str, ...]


@dataclass
class ScenarioReport:
    """Non-raising result of running a corpus."""

    passed: list[Scenario] = field(default_factory=list)
    failed: list[ScenarioFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every scenario passed (an empty corpus is not ok)."""
        return bool(self.passed) and not self.failed


def _case(source: str, index: int, raw: Any, limits: Limits = DEFAULT_LIMITS) -> Scenario:
    where = f"{source}: cases[{index}]"
    if not isinstance(raw, dict):
        raise ValidationError("scenario", [f"{where}: expected a mapping"])
    problems = [f"{where}: missing field {k!r}" for k in sorted(_CASE_KEYS - raw.keys())]
    problems += [f"{where}: unknown field {k!r}" for k in sorted(raw.keys() - _CASE_KEYS)]
    if problems:
        raise ValidationError("scenario", problems)
    if raw["want_tier"] not in TIERS:
        raise ValidationError("scenario", [f"{where}.want_tier: {raw['want_tier']!r} is not one of {list(TIERS)}"])
    factors = raw["want_factors"]
    if not isinstance(factors, list) or not all(isinstance(f, str) for f in factors):
        raise ValidationError("scenario", [f"{where}.want_factors: expected a list of strings"])
    try:
        proposal = Proposal.from_dict(raw["proposal"], limits=limits)
    except ValidationError as exc:
        raise ValidationError("scenario", [f"{where}.proposal: {p}" for p in exc.problems]) from exc
    return Scenario(source, index, str(raw["note"]), proposal, raw["want_tier"], frozenset(factors))


def load_scenarios(paths: Iterable[Path], *, limits: Limits = DEFAULT_LIMITS) -> list[Scenario]:
    """Load every case from scenario files or directories of ``*.yaml``.

    Each file is read under ``limits.scenario_file_bytes`` and parsed like an
    inventory file (no aliases, bounded nesting, strict UTF-8).
    """
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")))
        elif p.is_file():
            files.append(p)
        else:
            raise PolicyError(f"scenario path {p} does not exist")
    out: list[Scenario] = []
    for f in files:
        data, _ = read_limited(
            f, max_bytes=limits.scenario_file_bytes, what="scenario", limit_key="scenario_file_bytes",
            regular_only=True,
        )
        doc = load_yaml(data, what="scenario", label=f.name, max_depth=limits.max_depth)
        if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
            raise ValidationError("scenario", [f"{f.name}: expected a mapping with a 'cases' list"])
        out.extend(_case(f.name, i, c, limits) for i, c in enumerate(doc["cases"]))
    return out


def check(scenario: Scenario, decision: Decision) -> tuple[str, ...]:
    """Return the differences between a decision and a scenario's expectation."""
    problems = []
    if decision.tier != scenario.want_tier:
        problems.append(f"tier: want {scenario.want_tier}, got {decision.tier}")
    got = frozenset(decision.risk_factors)
    if got != scenario.want_factors:
        missing = sorted(scenario.want_factors - got)
        extra = sorted(got - scenario.want_factors)
        problems.append(f"factors: missing {missing}, unexpected {extra}")
    return tuple(problems)


def run_scenarios(decider: Decider, scenarios: Sequence[Scenario]) -> ScenarioReport:
    """Decide every scenario and compare; never raises for a mismatch."""
    report = ScenarioReport()
    for s in scenarios:
        decision = decider.decide_validated(s.proposal)
        problems = check(s, decision)
        if problems:
            report.failed.append(ScenarioFailure(s, decision, problems))
        else:
            report.passed.append(s)
    return report

"""Quorum matching: which approvals count, and is the quorum met.

A decision's :class:`~hitlgate.engine.decide.decision.Quorum` asks for ``required``
distinct approvals, and lists slots (each "someone with the role X or on
team Y") that must be among them. **A person fills at most one slot**, even
when they hold several of the roles or belong to several of the teams a
quorum names. Vault's control groups count one person toward every group
they belong to; that lets a single person satisfy a "security + payments"
rule alone. We do not.

Assigning people to slots is a maximum bipartite matching (augmenting
paths), not a greedy pass: with slots ``[security, team-payments]`` and
approvals from erin (security and payments) then alice (security), a greedy
pass puts erin on security and leaves payments empty, while the matching
moves erin to payments and alice to security, and the quorum is met.

Approvals beyond the slots (``required > len(slots)``) may come from any
other registered approver. :func:`assess` never raises and returns a
:class:`QuorumProgress` for UIs; :func:`require_met` and
:func:`require_eligible` are the raising checks the engine uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hitlgate.engine.decide.decision import Quorum, QuorumSlot
from hitlgate.engine.decide.inventory import Approver
from hitlgate.errors import ApprovalError


@dataclass(frozen=True)
class QuorumProgress:
    """A non-raising report on how far a request's quorum has come.

    ``assignment`` maps each filled slot index to the approver filling it;
    ``extra`` lists approvers counted beyond the slots; ``missing_slots``
    are the slots no approver can fill yet.
    """

    required: int
    slots: tuple[QuorumSlot, ...]
    assignment: Mapping[int, str] = field(default_factory=dict)
    extra: tuple[str, ...] = ()
    missing_slots: tuple[QuorumSlot, ...] = ()
    not_counted: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        people = list(self.assignment.values()) + list(self.extra)
        if len(people) != len(set(people)):
            raise ValueError("a person may fill at most one slot")

    @property
    def counted(self) -> tuple[str, ...]:
        """The approvers who count toward the quorum, slot fillers first."""
        return tuple(self.assignment[i] for i in sorted(self.assignment)) + self.extra

    @property
    def count(self) -> int:
        """How many approvals count."""
        return len(self.counted)

    @property
    def met(self) -> bool:
        """Whether every slot is filled and enough distinct people approved.

        A quorum that requires nothing is never "met" here: requests that
        need no approval never reach quorum checks, and an empty requirement
        must not read as consent.
        """
        return self.required >= 1 and not self.missing_slots and self.count >= self.required

    @property
    def missing_any(self) -> int:
        """Approvals still needed beyond the named slots."""
        return max(0, self.required - self.count - len(self.missing_slots))

    def describe(self) -> str:
        """One line for people, e.g. ``1 of 2 approvals; missing: a member of team-payments``."""
        head = f"{self.count} of {self.required} approval{'s' if self.required != 1 else ''}"
        if self.met:
            return f"{head}; quorum met ({', '.join(self.counted)})"
        missing = [s.describe() for s in self.missing_slots]
        if self.missing_any:
            missing.append(f"{self.missing_any} more registered approver(s)")
        return f"{head}; missing: {'; '.join(missing)}"

    def to_dict(self) -> dict[str, object]:
        """JSON form of the report."""
        return {
            "required": self.required,
            "count": self.count,
            "met": self.met,
            "counted": list(self.counted),
            "slots": [
                {**s.to_dict(), "filled_by": self.assignment.get(i)} for i, s in enumerate(self.slots)
            ],
            "missing": [s.describe() for s in self.missing_slots],
            "missing_any": self.missing_any,
            "not_counted": list(self.not_counted),
            "summary": self.describe(),
        }


def can_fill(slot: QuorumSlot, approver: Approver) -> bool:
    """Whether ``approver`` holds one of the slot's roles or belongs to one of its teams."""
    return approver.fills(slot.roles, slot.teams)


def _max_matching(slots: Sequence[QuorumSlot], people: Sequence[Approver]) -> dict[int, int]:
    """Maximum bipartite matching slot index -> person index (Kuhn's augmenting paths).

    Sizes are tiny (a handful of slots and approvers), so the O(V·E)
    algorithm is plenty and easy to audit.
    """
    edges = [[j for j, p in enumerate(people) if can_fill(s, p)] for s in slots]
    person_slot: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in edges[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in person_slot or augment(person_slot[j], seen):
                person_slot[j] = i
                return True
        return False

    for i in range(len(slots)):
        augment(i, set())
    return {i: j for j, i in person_slot.items()}


def assess(quorum: Quorum, approvers: Sequence[Approver]) -> QuorumProgress:
    """Report how the approvals of ``approvers`` (in voting order) fill ``quorum``.

    Never raises. A name appearing twice counts once.
    """
    people: list[Approver] = []
    seen: set[str] = set()
    for a in approvers:
        if a.name not in seen:
            seen.add(a.name)
            people.append(a)
    slots = quorum.slots
    matching = _max_matching(slots, people)
    assignment = {i: people[j].name for i, j in sorted(matching.items())}
    used = set(matching.values())
    free = max(0, quorum.required - len(slots))
    leftovers = [p.name for j, p in enumerate(people) if j not in used]
    extra = tuple(leftovers[:free])
    not_counted = tuple(leftovers[free:])
    missing = tuple(s for i, s in enumerate(slots) if i not in matching)
    return QuorumProgress(
        required=quorum.required,
        slots=slots,
        assignment=assignment,
        extra=extra,
        missing_slots=missing,
        not_counted=not_counted,
    )


def require_eligible(quorum: Quorum, approver: Approver) -> None:
    """Raise :class:`ApprovalError` unless ``approver`` could fill some place in ``quorum``."""
    if quorum.required < 1:
        raise ApprovalError("this request takes no approvals")
    if any(can_fill(s, approver) for s in quorum.slots):
        return
    if quorum.required > len(quorum.slots):
        return
    wanted = "; ".join(s.describe() for s in quorum.slots)
    raise ApprovalError(f"{approver.name} is not eligible for this request: it needs {wanted}")


def require_met(quorum: Quorum, approvers: Sequence[Approver]) -> QuorumProgress:
    """Return the progress report, raising :class:`ApprovalError` unless the quorum is met."""
    report = assess(quorum, approvers)
    if not report.met:
        raise ApprovalError(f"quorum not met: {report.describe()}")
    return report

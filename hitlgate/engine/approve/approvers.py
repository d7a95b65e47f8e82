"""The registered approvers: who may vote, with which key, in which roles and teams.

Read from the trusted inventory the policy backend decides with and reloaded
when it changes. The workflow authenticates votes against it and the
executor guard re-checks a warrant's approvals against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hitlgate.engine.decide.facts import FactSource, shared_file_facts
from hitlgate.engine.decide.inventory import Approver
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits
from hitlgate.errors import ApprovalError


class ApproverRegistry:
    """The registered approvers, read from the configured inventory and reloaded when it changes.

    The inventory is the one the policy backend decides with (one load per
    process, see :func:`hitlgate.engine.decide.facts.shared_file_facts`), or the
    fact source given.
    """

    def __init__(
        self, data_paths: Sequence[Path], *, limits: Limits = DEFAULT_LIMITS, facts: FactSource | None = None
    ) -> None:
        self._facts = facts if facts is not None else shared_file_facts(data_paths, limits=limits)

    def _current(self) -> dict[str, Approver]:
        return self._facts.current().approvers

    def all(self) -> dict[str, Approver]:
        """Every registered approver by name."""
        return dict(self._current())

    def record(self, section: str, key: str) -> Any:
        """One inventory record by section and id (``identities``, ``workloads``, ``approvers``...), or None.

        For what the inventory says beyond keys and roles: a target's owner
        team, an approver's ``email`` (the notifications address them).
        """
        return self._facts.current().record(section, key)

    def get(self, name: str) -> Approver:
        """The registered approver ``name``; raises :class:`ApprovalError` if there is none."""
        approver = self._current().get(name)
        if approver is None:
            raise ApprovalError(f"{name!r} is not a registered approver; register their public key in the inventory")
        return approver

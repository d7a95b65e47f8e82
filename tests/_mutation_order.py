"""pytest plugin for mutation runs only (scripts/mutation): a mutant's tests run fastest first.

mutmut runs, for each mutant, the tests that executed the mutated function,
with ``-x``: the first failure ends the run and kills the mutant. It passes
them as a set, so they ran in an arbitrary order, often a multi-second
engine test before the millisecond unit test that fails at once. This
plugin sorts the collected tests by the duration mutmut recorded for each
when it collected its stats (``mutmut-stats.json`` in the working
directory); before that file exists (the stats run itself), it changes
nothing. A surviving mutant still runs every one of its tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

_durations: dict[str, float] | None = None


def _recorded_durations() -> dict[str, float]:
    """The stats' duration per test id, read once per process (mutmut forks each mutant's run from it)."""
    global _durations
    if _durations is None:
        try:
            doc = json.loads(Path("mutmut-stats.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        _durations = {str(k): float(v) for k, v in doc.get("duration_by_test", {}).items()}
    return _durations


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fastest first; tests without a recorded duration keep their order, after the rest."""
    durations = _recorded_durations()
    if durations:
        items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))

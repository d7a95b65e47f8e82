"""The mutation run's test-order plugin (tests/_mutation_order.py) puts a mutant's likeliest killers first.

The tenth full run found its durations cached from before mutmut's stats
run: every test added since had none and ran last, so a mutant a new
test kills in a millisecond ran its function's hundreds of other tests
first (over a minute each).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests import _mutation_order as plugin

FUNCTION = "hitlgate.engine.ledger.audit.x_sign_checkpoint"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(plugin, "_durations", None)
    monkeypatch.setenv("MUTANT_UNDER_TEST", f"{FUNCTION}__mutmut_7")
    return tmp_path


def _stats(durations: dict[str, float]) -> None:
    Path("mutmut-stats.json").write_text(json.dumps({"duration_by_test": durations}), encoding="utf-8")


def _order(nodeids: list[str]) -> list[str]:
    items: list[Any] = [SimpleNamespace(nodeid=n) for n in nodeids]
    plugin.pytest_collection_modifyitems(config=None, items=items)  # type: ignore[arg-type]
    return [i.nodeid for i in items]


def test_durations_written_after_the_first_read_are_used(workdir: Path) -> None:
    _stats({"slow": 9.0, "fast": 0.1})
    assert _order(["slow", "new", "fast"]) == ["fast", "slow", "new"]
    _stats({"slow": 9.0, "fast": 0.1, "new": 0.001})  # mutmut's stats run records the new test.
    assert _order(["slow", "new", "fast"]) == ["new", "fast", "slow"]


def test_a_known_killer_of_the_function_runs_first(workdir: Path) -> None:
    _stats({"slow": 9.0, "fast": 0.1})
    Path("mutation-killers.tsv").write_text(f"{FUNCTION}\tslow\nother.function\tfast\n", encoding="utf-8")
    assert _order(["fast", "slow"]) == ["slow", "fast"]


def test_an_unreadable_stats_file_changes_nothing(workdir: Path) -> None:
    os.mkdir("mutmut-stats.json")
    assert _order(["b", "a"]) == ["b", "a"]

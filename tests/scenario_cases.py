"""One parametrize helper for the scenario corpus, shared by every backend's tests."""

from __future__ import annotations

from typing import Any

import pytest

from hitlgate.engine._resources import bundled_scenario_dir
from hitlgate.engine.decide.scenarios import Scenario, load_scenarios


def scenario_params() -> list[Any]:
    """Every case of the bundled corpus as a pytest param, id'd by file and index."""
    return [pytest.param(s, id=f"{s.source}#{s.index}") for s in load_scenarios([bundled_scenario_dir()])]


def all_scenarios() -> list[Scenario]:
    """Every case of the bundled corpus."""
    return load_scenarios([bundled_scenario_dir()])

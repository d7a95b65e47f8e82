"""Shared fixtures: the bundled example pack, temp copies of it, proposals."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from hitlgate.engine import Config, Decider
from hitlgate.engine._resources import bundled_policy_dir
from tests._require import missing

# In CI, generated cases are derandomized: the same examples every run, so a
# red build is reproducible and never depends on luck. Locally, hypothesis
# explores new examples each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def make_proposal(
    action_type: str = "rotate_api_key", target: str = "svc-payments-key", **extra: Any
) -> dict[str, Any]:
    """A valid proposal document with overridable parts."""
    doc: dict[str, Any] = {
        "action": {"type": action_type, "target": target, "parameters": {}},
        "requester": {"id": "soc-agent-7", "kind": "agent"},
        "justification": "test",
    }
    doc.update(extra)
    return doc


@pytest.fixture
def proposal() -> Callable[..., dict[str, Any]]:
    """Factory for valid proposal documents."""
    return make_proposal


@pytest.fixture
def pack_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled policy pack (policies/ with data/ and scenarios/)."""
    dst = tmp_path / "policies"
    shutil.copytree(bundled_policy_dir(), dst, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    return dst


@pytest.fixture
def pack_config(pack_copy: Path, tmp_path: Path) -> Config:
    """A Config on the writable pack copy, with state and keys in tmp_path."""
    return Config(
        policy_dir=pack_copy,
        data_paths=(pack_copy / "data",),
        scenario_dir=pack_copy / "scenarios",
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        key_dir=tmp_path / "keys",
    )


@pytest.fixture(scope="session")
def example_decider() -> Decider:
    """A decider on the bundled example pack, embedded backend."""
    return Decider.from_config(Config())


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a real Chromium for browser tests (missing: skipped locally, a failure in CI)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    missing("a browser (Chromium)", "install the Debian package chromium; browser tests drive it with Playwright")

"""Locations of the files that ship inside the wheel (policy pack, schemas)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _data_package(package: str, repo_dir: str) -> Path:
    try:
        return Path(str(resources.files(package)))
    except ModuleNotFoundError:
        # Imported straight from a source checkout (``hitlgate/`` on sys.path
        # ahead of the installed package): the files sit at the repo's top.
        return Path(__file__).resolve().parents[2] / repo_dir


def bundled_policy_dir() -> Path:
    """Return the directory of the bundled example policy pack."""
    return _data_package("hitlgate.policies", "policies")


def bundled_data_dir() -> Path:
    """Return the directory of the bundled example inventory."""
    return bundled_policy_dir() / "data"


def bundled_scenario_dir() -> Path:
    """Return the directory of the bundled scenario corpus."""
    return bundled_policy_dir() / "scenarios"


def schema_path(name: str) -> Path:
    """Return the path of a bundled JSON Schema, e.g. ``proposal``."""
    return _data_package("hitlgate.schemas", "schemas") / f"{name}.schema.json"

"""Locations of the files that ship inside the wheel (policy pack, schemas, starter).

In a wheel, ``policies/``, ``schemas/`` and ``starter/`` are installed inside
the package (``hitlgate/policies``, ``hitlgate/schemas``,
``hitlgate/starter``; see pyproject.toml). In a source checkout or an
editable install they sit at the repository's top, next to ``hitlgate/``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _data_dir(name: str) -> Path:
    installed = _PACKAGE_DIR / name
    return installed if installed.is_dir() else _PACKAGE_DIR.parent / name


def bundled_policy_dir() -> Path:
    """Return the directory of the bundled example policy pack."""
    return _data_dir("policies")


def bundled_data_dir() -> Path:
    """Return the directory of the bundled example inventory."""
    return bundled_policy_dir() / "data"


def bundled_scenario_dir() -> Path:
    """Return the directory of the bundled scenario corpus."""
    return bundled_policy_dir() / "scenarios"


def starter_policy_dir() -> Path:
    """Return the files ``hitlgate init`` adds to the example pack (a custom risk factor, end to end)."""
    return _data_dir("starter") / "policies"


def schema_path(name: str) -> Path:
    """Return the path of a bundled JSON Schema, e.g. ``proposal``."""
    return _data_dir("schemas") / f"{name}.schema.json"

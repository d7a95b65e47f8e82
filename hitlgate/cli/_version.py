"""``hitlgate --version``: the versions in use and the configured pack's revision.

Imported only by the ``--version`` callback: running ``opa version`` and
hashing the pack cost tens of milliseconds that no other command should pay.
"""

from __future__ import annotations

import subprocess
from importlib import metadata
from typing import Any

import click

from hitlgate import __version__
from hitlgate.cli._common import CliState, echo_json
from hitlgate.errors import HitlgateError


def _regopy_version() -> str:
    try:
        return metadata.version("regopy")
    except metadata.PackageNotFoundError:
        return "not installed"


def _opa_version() -> tuple[str, str | None]:
    """``(version or "not found", binary path)`` of the OPA binary ``policy test`` would use."""
    from hitlgate.engine.decide._policytest import find_opa

    opa = find_opa()
    if opa is None:
        return "not found", None
    try:
        out = subprocess.run(  # noqa: S603 - the binary the user configured, no shell.
            [str(opa), "version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"not runnable ({exc})", str(opa)
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip(), str(opa)
    return "unknown", str(opa)


def _policy_revision(state: CliState) -> dict[str, Any]:
    from hitlgate.engine.decide.policy import PolicyPack

    try:
        config = state.config
        pack = PolicyPack.load(config.policy_dir, config.data_paths)
    except HitlgateError as exc:
        return {"revision": None, "error": str(exc)}
    return {"revision": pack.revision, "dir": str(config.policy_dir)}


def version_report(state: CliState) -> None:
    """Print the version report (JSON with ``--json``)."""
    opa, opa_path = _opa_version()
    policy = _policy_revision(state)
    if state.json:
        echo_json({"hitlgate": __version__, "regopy": _regopy_version(), "opa": opa, "opa_path": opa_path,
                   "policy": policy})
        return
    click.echo(f"hitlgate, version {__version__}")
    click.echo(f"regopy:  {_regopy_version()}")
    click.echo(f"opa:     {opa}" + (f" ({opa_path})" if opa_path else ""))
    if policy["revision"]:
        click.echo(f"policy:  {policy['revision']} ({policy['dir']})")
    else:
        click.echo(f"policy:  broken: {policy['error']}")

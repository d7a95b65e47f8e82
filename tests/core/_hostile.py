"""Helpers for the hostile-input tests: a project on a pack copy, and CLI runs that must not crash."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from hitlgate.cli import cli

#: Exit codes a command may end with (errors.py); anything else is a crash.
EXIT_CODES = {0, 1, 2, 3, 4, 5}


def project(tmp_path: Path, pack: Path, *, inventory: str | bytes | None = None, config_extra: str = "") -> Path:
    """Write a hitlgate.yaml on ``pack`` (optionally with ``inventory`` as its only data file); return its path."""
    data = pack / "data"
    if inventory is not None:
        data = tmp_path / "data"
        data.mkdir(exist_ok=True)
        body = inventory.encode("utf-8") if isinstance(inventory, str) else inventory
        (data / "inventory.yaml").write_bytes(body)
    config = tmp_path / "hitlgate.yaml"
    config.write_text(
        f"policy: {pack}\ndata: [{data}]\nscenarios: {pack / 'scenarios'}\n"
        f"state: sqlite:///{tmp_path / 'state.db'}\nkeys: {tmp_path / 'keys'}\n{config_extra}",
        encoding="utf-8",
    )
    return config


def run(args: list[str], *, config: Path | None = None, stdin: str | bytes | None = None) -> Result:
    """Invoke the CLI in process and assert it ended like a command, not like a crash."""
    full = (["--config", str(config)] if config is not None else []) + args
    result = CliRunner().invoke(cli, full, input=stdin)
    assert result.exit_code in EXIT_CODES, (result.exit_code, result.output)
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}")
    return result


def decision_of(result: Result) -> dict[str, object]:
    """The JSON decision a ``decide --json`` run printed on stdout."""
    doc = json.loads(result.stdout)
    assert isinstance(doc, dict)
    return doc

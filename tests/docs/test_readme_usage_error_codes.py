"""The README names every error code a click usage error can produce under ``--json``.

``hitlgate --json decide`` (no argument) answers ``missing_parameter``, not
``usage_error``; an agent that branches on the code needs the README to list
each one the CLI emits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--json", "decide"], "missing_parameter"),
        (["--json", "requests", "--limit", "abc"], "bad_parameter"),
        (["--json", "nosuch"], "usage_error"),
        (["--json", "decide", "--nosuch", "p.json"], "usage_error"),
    ],
)
def test_usage_error_code_is_documented(argv: list[str], code: str) -> None:
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["code"] == code
    assert f"`{code}`" in README.read_text(encoding="utf-8")

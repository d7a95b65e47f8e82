"""Shared CLI plumbing: configuration loading, JSON/text output helpers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from hitlgate.engine.config import Config, load_config
from hitlgate.errors import ValidationError


@dataclass
class CliState:
    """Per-invocation state hung on the click context."""

    config_path: str | None = None
    verbose: bool = False
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        """The loaded configuration (loaded once, on first use)."""
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


pass_state = click.make_pass_decorator(CliState)


def read_json_arg(path: str, what: str) -> Any:
    """Read a JSON document from a file path or ``-`` (stdin)."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        raise ValidationError(what, [f"(document): cannot read {path}: {exc.strerror}"]) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            what, [f"(document): malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from exc


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=2, sort_keys=False))

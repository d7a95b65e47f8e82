"""The ``hitlgate`` command line: a thin shell over :mod:`hitlgate.engine`.

The root group catches :class:`~hitlgate.errors.HitlgateError` once, prints
its message and exits with the error's exit code (2 for bad input, 1
otherwise); ``--verbose`` also prints the traceback. Commands live in the
private ``_*.py`` modules next to this one and are registered below.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import click

from hitlgate import __version__
from hitlgate.cli._common import CliState
from hitlgate.errors import HitlgateError


class _Root(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HitlgateError as exc:
            state = ctx.find_object(CliState)
            if state is not None and state.verbose:
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hitlgate")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=str),
    envvar="HITLGATE_CONFIG",
    help="hitlgate.yaml to use (default: $HITLGATE_CONFIG, ./hitlgate.yaml, else the bundled example pack).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """hitlgate: human-in-the-loop decisions and warrants for NHI response actions."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = CliState(config_path=config_path, verbose=verbose)


def _register() -> None:
    from hitlgate.cli import _decide

    _decide.register(cli)
    for name in ("_workflow", "_opa"):
        try:
            module = __import__(f"hitlgate.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"hitlgate.cli.{name}":
                raise
            continue
        module.register(cli)


_register()


def main() -> None:
    """Console script entry point."""
    cli(prog_name="hitlgate")

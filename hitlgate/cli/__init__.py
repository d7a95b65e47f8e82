"""The ``hitlgate`` command line: a thin shell over :mod:`hitlgate.engine`.

The root group is the one place where failures become output and exit
codes (see :data:`hitlgate.errors.EXIT_CODES`):

* a :class:`~hitlgate.errors.HitlgateError` exits with its ``exit_code``;
* a usage error from click (missing argument, bad option) exits 2, as one
  ``error: ...`` line and a ``(see 'hitlgate CMD --help')`` hint;
* anything else is a bug: code ``internal``, exit 1, traceback only with ``-v``;
* a closed stdout (``hitlgate requests | head -1``) is not an error: the
  command stops quietly and exits 141 (128 + SIGPIPE), what a shell reports
  for ``cat``, ``grep`` or ``git log`` cut short the same way.

Without ``--json`` the error is one ``error: ...`` line on stderr. With
``--json`` (global, ``hitlgate --json CMD``, or on the command) the error is
the document ``{"error": {"code", "message", "problems"?, "exit_code"}}`` on
stdout, so an agent reads one stream. Commands live in the private
``_*.py`` modules next to this one and are registered below.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from typing import Any

import click

from hitlgate import __version__
from hitlgate.cli._common import CliState
from hitlgate.errors import EXIT_CODES, EXIT_ERROR, EXIT_USAGE, HitlgateError

#: Appended to ``hitlgate --help``; ``\b`` keeps click from rewrapping the table.
EPILOG = (
    "\b\nExit codes (every command):\n"
    + "\n".join(f"  {code}  {words}" for code, words in EXIT_CODES.items())
    + "\n\n\b\nWith --json, results and errors are JSON on stdout; an error is\n"
    '  {"error": {"code": ..., "message": ..., "problems": [...], "exit_code": N}}.\n'
    "Without --json, an error is one 'error: ...' line on stderr.\n"
    "\n\b\nExamples:\n"
    "  hitlgate demo\n"
    "  hitlgate --json decide proposal.json"
)

#: Engine loggers whose failures reach the user as the command's own output
#: (a fail-closed decision's reason, a refused warrant's error line). Without
#: -v their log records would print the same refusal a second time.
_REPORTED_BY_THE_CLI = (
    "hitlgate.engine.decide.decider",
    "hitlgate.engine.decide._regopy",
    "hitlgate.engine.decide._opa",
    "hitlgate.engine.keys.warrants",
    "hitlgate.engine.approve.guard",
)


class _NotReportedTwice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(_REPORTED_BY_THE_CLI)


def _configure_logging(verbose: bool) -> None:
    """Log to stderr: WARNING and up without -v (minus what the CLI reports itself), everything with -v."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "hitlgate_cli", False):
            root.removeHandler(handler)
    if root.handlers:
        # Whoever embeds the CLI (a test runner, an application) configured logging.
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.hitlgate_cli = True  # type: ignore[attr-defined]
    if not verbose:
        handler.addFilter(_NotReportedTwice())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)


def _json_requested(args: list[str]) -> bool:
    """Whether ``--json`` appears among the options (before a ``--``), at any level."""
    end = args.index("--") if "--" in args else len(args)
    return "--json" in args[:end]


def _click_message(exc: click.ClickException) -> str:
    """click's message, except that a non-number for an IntRange option says what it wants.

    click words it "'abc' is not a valid integer range.", as if a range
    were expected; the range it checks is printed instead.
    """
    message = exc.format_message()
    kind = getattr(getattr(exc, "param", None), "type", None)
    if isinstance(exc, click.BadParameter) and isinstance(kind, click.IntRange):
        low = None if kind.min is None else kind.min + (1 if kind.min_open else 0)
        high = None if kind.max is None else kind.max - (1 if kind.max_open else 0)
        wanted = (f"a whole number from {low} to {high}" if low is not None and high is not None
                  else f"a whole number of at least {low}" if low is not None
                  else f"a whole number of at most {high}" if high is not None else "a whole number")
        message = message.replace("is not a valid integer range.", f"is not {wanted}.")
    return message


def _usage_error_json(exc: click.ClickException) -> dict[str, Any]:
    if isinstance(exc, click.MissingParameter):
        code = "missing_parameter"
    elif isinstance(exc, click.BadParameter):
        code = "bad_parameter"
    elif isinstance(exc, click.UsageError):
        code = "usage_error"
    else:
        code = "error"
    exit_code = EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    message = _click_message(exc)
    if _NO_ARGS_IS_HELP is not None and isinstance(exc, _NO_ARGS_IS_HELP):
        # A group without its sub-command (`hitlgate --json policy`): click's message is the whole
        # help text, which is no error message; say what is missing, as bare `hitlgate --json` does.
        where = " ".join(["hitlgate", *(exc.ctx.command_path.split()[1:] if exc.ctx is not None else [])])
        message = f"missing command ({where} --help lists them)"
    return {"error": {"code": code, "message": message, "exit_code": exit_code}}


#: The exit status of a command whose reader closed stdout: 128 + SIGPIPE (13),
#: as a shell reports for a process that SIGPIPE ended.
EXIT_CLOSED_STDOUT = 141
#: The exit status of a command interrupted by Ctrl-C: 128 + SIGINT (2).
EXIT_INTERRUPTED = 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail on the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


#: click 8.2+ raises this for a bare group invocation; its message is the help text.
_NO_ARGS_IS_HELP: type[click.UsageError] | None = getattr(click.exceptions, "NoArgsIsHelpError", None)


def _usage_error_text(exc: click.ClickException) -> str:
    """A click error as the CLI's one ``error: ...`` line, plus for a usage error the command whose --help helps."""
    if _NO_ARGS_IS_HELP is not None and isinstance(exc, _NO_ARGS_IS_HELP):
        # Bare ``hitlgate``: the help itself is the message.
        return exc.format_message()
    line = f"error: {_click_message(exc)}"
    if isinstance(exc, click.UsageError):
        # Always spelled "hitlgate", whatever name the process was started as (python -m, a test runner).
        where = " ".join(["hitlgate", *(exc.ctx.command_path.split()[1:] if exc.ctx is not None else [])])
        line += f"\n(see '{where} --help')"
    return line


def _emit_json_error(doc: dict[str, Any]) -> None:
    click.echo(json.dumps(doc, indent=2))


class _Root(click.Group):
    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        as_json = _json_requested(args)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            doc = _usage_error_json(exc)
            if as_json:
                _emit_json_error(doc)
            else:
                click.echo(_usage_error_text(exc), err=True)
            raise click.exceptions.Exit(doc["error"]["exit_code"]) from exc
        ctx.meta["hitlgate.json"] = as_json
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`| head`): nothing is wrong and nobody is left to tell.
            _silence_stdout()
            ctx.exit(EXIT_CLOSED_STDOUT)
        except KeyboardInterrupt as exc:
            # Ctrl-C: under --json still one JSON document (click's own handler would print "Aborted!"),
            # exiting as a shell reports a process SIGINT ended. What was written before stays as it
            # was: every change to the store is its own transaction.
            doc = {"error": {"code": "interrupted", "message": "interrupted (Ctrl-C) before the command finished",
                             "exit_code": EXIT_INTERRUPTED}}
            self._fail(ctx, doc, exc, f"error: {doc['error']['message']}")
        except HitlgateError as exc:
            self._fail(ctx, exc.to_json(), exc, f"error: {exc}")
        except click.ClickException as exc:
            self._fail(ctx, _usage_error_json(exc), exc, _usage_error_text(exc))
        except Exception as exc:  # noqa: BLE001 - the one place a bug becomes an exit code, not a traceback.
            message = f"unexpected {type(exc).__name__}: {exc}"
            doc = {"error": {"code": "internal", "message": message, "exit_code": EXIT_ERROR}}
            self._fail(ctx, doc, exc, f"error: {message} (a bug in hitlgate; -v shows the traceback)")
        return None  # pragma: no cover - _fail always exits.

    @staticmethod
    def _fail(ctx: click.Context, doc: dict[str, Any], exc: BaseException, line: str) -> None:
        state = ctx.find_object(CliState)
        if state is not None and state.verbose:
            traceback.print_exception(exc, file=sys.stderr)
        if _wants_json(ctx):
            _emit_json_error(doc)
        else:
            click.echo(line, err=True)
        ctx.exit(doc["error"]["exit_code"])


def _wants_json(ctx: click.Context) -> bool:
    state = ctx.find_object(CliState)
    return bool(ctx.meta.get("hitlgate.json")) or (state is not None and state.json)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    # Only here, never at start-up: finding OPA and hashing the pack costs time.
    from hitlgate.cli._version import version_report

    ctx.meta["hitlgate.version"] = version_report


@click.group(
    cls=_Root,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EPILOG,
    invoke_without_command=True,
    no_args_is_help=True,
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the hitlgate, regopy and OPA versions and the configured pack's policy revision.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=str),
    envvar="HITLGATE_CONFIG",
    help="hitlgate.yaml to use (default: $HITLGATE_CONFIG, ./hitlgate.yaml, else the bundled example pack).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout, errors included (any command).")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, as_json: bool, verbose: bool) -> None:
    """hitlgate: human-in-the-loop decisions and warrants for NHI response actions."""
    _configure_logging(verbose)
    ctx.obj = CliState(config_path=config_path, verbose=verbose, json=as_json or bool(ctx.meta.get("hitlgate.json")))
    report = ctx.meta.pop("hitlgate.version", None)
    if report is not None:
        report(ctx.obj)
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        raise click.UsageError("missing command (hitlgate --help lists them)", ctx)


def _register() -> None:
    from hitlgate.cli import _decide

    _decide.register(cli)
    for name in ("_workflow", "_opa", "_schema", "_inventory", "_serve", "_policyci", "_notify", "_approvers"):
        try:
            module = __import__(f"hitlgate.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"hitlgate.cli.{name}":
                raise
            continue
        module.register(cli)


_register()


def main() -> None:
    """Console script entry point; a closed stdout ends it quietly with exit 141 (see the module docstring)."""
    try:
        cli(prog_name="hitlgate")
    except SystemExit as exc:
        status = exc.code
    else:  # pragma: no cover - click's standalone mode always exits.
        status = 0
    try:
        # Flushed here, not at interpreter exit, where a broken pipe would print a traceback and exit 120.
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        status = EXIT_CLOSED_STDOUT
    sys.exit(status)


__all__ = ["__version__", "cli", "main"]

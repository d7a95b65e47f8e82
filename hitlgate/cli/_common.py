"""Shared CLI plumbing: configuration loading, the ``--json`` flag, reading documents, JSON/text output helpers.

Every document a command reads from a file or stdin goes through
:func:`read_json_arg` or :func:`read_text_arg`: read under the byte limit
the configuration sets for its kind (``limits:`` in ``hitlgate.yaml``),
decoded as strict UTF-8 and parsed without recursion (see
:mod:`hitlgate.engine._safeparse`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from hitlgate.engine._files import names_a_directory
from hitlgate.engine._safeparse import parse_json, read_limited, shorten
from hitlgate.engine.config import Config, load_config
from hitlgate.engine.decide.decision import Decision
from hitlgate.engine.keys._demokeys import uses_example_pack
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits
from hitlgate.errors import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PENDING,
    EXIT_POLICY_BROKEN,
    EXIT_REFUSED,
    InputError,
    ValidationError,
)


@dataclass
class CliState:
    """Per-invocation state hung on the click context."""

    config_path: str | None = None
    verbose: bool = False
    #: Print JSON (results on stdout, errors as ``{"error": {...}}`` on stdout).
    json: bool = False
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        """The loaded configuration (loaded once, on first use); warns on stderr if it is the example pack."""
        if self._config is None:
            self._config = load_config(self.config_path)
            if uses_example_pack(self._config.policy_dir, self._config.data_paths):
                warn_example_pack(self._config)
        return self._config


def warn_example_pack(config: Config) -> None:
    """Announce on stderr (never stdout, so --json stays pure) that the bundled example pack decides.

    Like Vault's dev mode: running on it by accident must be impossible to
    miss, because its approvers' keys are public and its inventory is fiction.
    """
    if config.source is None:
        why = "no hitlgate.yaml found (--config, $HITLGATE_CONFIG, ./hitlgate.yaml)"
    else:
        why = f"{config.source} names no policy pack of its own"
    # Only a SQLite path is shown: a database URL may carry a password.
    # The file's path, as SQLAlchemy reads it (escapes decoded, no parameters), without importing it here.
    state = (urllib.parse.unquote(config.state_url.removeprefix("sqlite:///").partition("?")[0])
             if config.state_url.startswith("sqlite:///") else "database")
    lines = [
        f"WARNING: EXAMPLE POLICY PACK IN USE: {why}.",
        "WARNING: Decisions come from the bundled example pack and its made-up inventory. Its approvers",
        "WARNING: have demo keys derived from a public seed; they count only in `hitlgate demo`.",
        f"WARNING: State: {state}; engine keys: {config.key_dir}.",
        "WARNING: For real use: hitlgate init DIR, then --config DIR/hitlgate.yaml (or $HITLGATE_CONFIG).",
    ]
    click.secho("\n".join(lines), fg="yellow", err=True)


pass_state = click.make_pass_decorator(CliState)

F = TypeVar("F", bound=Callable[..., Any])


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        state = ctx.find_object(CliState)
        if state is not None:
            state.json = True


def json_option(f: F) -> F:
    """The per-command ``--json`` flag (same as the global ``hitlgate --json CMD``); read it as ``state.json``."""
    return click.option(
        "--json",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print JSON on stdout (errors too, as {\"error\": {...}}).",
    )(f)


#: Which byte limit (a :class:`~hitlgate.engine.limits.Limits` field) applies to a document, by its name.
_LIMIT_OF = {
    "proposal": "proposal_bytes",
    "action": "proposal_bytes",
    "signed approval": "approval_bytes",
    "signed rejection": "approval_bytes",
    "JWKS": "jwks_bytes",
    "warrant": "warrant_bytes",
    "inventory record": "inventory_file_bytes",
}


def current_limits() -> Limits:
    """The limits of the invocation's configuration (the defaults outside a command)."""
    ctx = click.get_current_context(silent=True)
    state = ctx.find_object(CliState) if ctx is not None else None
    return state.config.limits if state is not None else DEFAULT_LIMITS


def _limit_key(what: str) -> str:
    return _LIMIT_OF.get(what, "proposal_bytes")


def read_json_arg(path: str, what: str) -> Any:
    """Read a JSON document from a file path or ``-`` (stdin), under the byte limit for ``what``."""
    limits = current_limits()
    key = _limit_key(what)
    data, label = read_limited(path, max_bytes=getattr(limits, key), what=what, limit_key=key)
    return parse_json(data, what=what, label=label, max_depth=limits.max_depth)


def read_text_arg(path: str, what: str) -> str:
    """Read a short text document (a warrant) from a file path or ``-`` (stdin), under its byte limit."""
    limits = current_limits()
    key = _limit_key(what)
    data, label = read_limited(path, max_bytes=getattr(limits, key), what=what, limit_key=key)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            what, [f"{label}: byte 0x{data[exc.start]:02x} at byte offset {exc.start} is not ASCII; "
                   "a compact JWS is ASCII only"],
            code="bad_encoding",
        ) from None
    return text.strip()


def check_text_arg(value: str, what: str) -> str:
    """A document given on the command line itself, refused over its byte limit."""
    limits = current_limits()
    key = _limit_key(what)
    if len(value.encode("utf-8", "surrogatepass")) > getattr(limits, key):
        raise InputError(
            f"{what}: the argument is larger than the limit of {getattr(limits, key)} bytes "
            f"({shorten(value, 40)}); raise limits.{key} in hitlgate.yaml if it is genuine",
            code="input_too_large",
        )
    return value


class Utf8Text(click.ParamType):
    """A command-line word that becomes data (a request id, an approver name): it must be valid UTF-8.

    The shell hands Python bytes that are not UTF-8 as lone surrogates
    (``surrogateescape``); a file name may hold them, an id or a name never
    can. Refused as invalid input naming the argument and the byte
    (``bad_encoding``, exit 2), not left to fail deep in the store.
    """

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """``value`` unchanged when it is UTF-8 text; :class:`ValidationError` naming the first bad byte."""
        text = str(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            label = (param.opts[0] if isinstance(param, click.Option)
                     else param.human_readable_name if param is not None else "argument")
            code = ord(text[exc.start])
            # A byte the shell passed that is not UTF-8 arrives as U+DC80..U+DCFF (surrogateescape).
            what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"character U+{code:04X}"
            raise ValidationError(
                "command line", [f"{label}: {what} (character {exc.start + 1}) is not UTF-8"], code="bad_encoding",
            ) from None
        return text


#: The type of every command-line word that becomes data.
UTF8_TEXT = Utf8Text()


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def examples(*commands: str) -> str:
    """A ``--help`` epilog listing example command lines (``\\b`` keeps click from rewrapping them)."""
    return "\b\nExamples:\n" + "\n".join(f"  {c}" for c in commands)


class OutFile(click.Path):
    """A file to write: never a directory, also not one named with a trailing slash or left empty.

    ``Path("out/")`` is ``out``: without this check ``--out out/`` wrote a
    file named ``out``, and ``--out ""`` named the current directory.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(dir_okay=False, **kwargs)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = os.fspath(value) if isinstance(value, str | os.PathLike) else value
        if isinstance(text, str) and names_a_directory(text):
            self.fail(f"{text!r} names a directory; give the file to write", param, ctx)
        return super().convert(value, param, ctx)


class FiniteRange(click.FloatRange):
    """A number in a closed range; ``nan`` (for which every comparison is false, so it passes) is refused."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number:  # NaN is the one value unequal to itself.
            self.fail(f"{value!r} is not a number from {self.min:g} to {self.max:g}.", param, ctx)
        return number


def bullet(text: str, indent: str = "    ") -> str:
    """``text`` as a ``- `` list item; its further lines stay indented under the item (a multi-line reason)."""
    first, *rest = text.splitlines() or [""]
    return "\n".join([f"{indent}- {first}", *(f"{indent}  {line}" for line in rest)])


def decision_exit_code(decision: Decision) -> int:
    """The exit code of a decision: 0 auto_allow, 3 deny, 4 approval required, 5 or 1 when it failed closed.

    A fail-closed deny is not the policy saying no: ``policy_broken`` exits
    5 so a CI job can tell a broken pack from a deny, and a backend outage
    or a bug exits 1 (operational).
    """
    if decision.fail_closed is not None:
        return EXIT_POLICY_BROKEN if decision.fail_closed["code"] == "policy_broken" else EXIT_ERROR
    if decision.tier == "auto_allow":
        return EXIT_OK
    if decision.tier == "deny":
        return EXIT_REFUSED
    return EXIT_PENDING


def narration_to_stderr_under_json(f: F) -> F:
    """For a command whose output is a story for people (``demo``): under --json the story goes to stderr.

    stdout then carries one document, ``{"ok": bool, "exit_code": n}``, so
    the --json contract (one JSON document on stdout) holds for it too.
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state = click.get_current_context().find_object(CliState)
        if state is None or not state.json:
            return f(*args, **kwargs)
        code = 0
        with contextlib.redirect_stdout(sys.stderr):
            try:
                f(*args, **kwargs)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except click.exceptions.Exit as exc:
                code = exc.exit_code
        echo_json({"ok": code == 0, "exit_code": code})
        if code:
            click.get_current_context().exit(code)
        return None

    return wrapper  # type: ignore[return-value]

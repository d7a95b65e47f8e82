"""CLI commands for policy CI: ``policy check`` and ``policy fmt`` (thin over engine._policycheck and friends)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import click

from hitlgate.cli._common import CliState, FiniteRange, echo_json, examples, json_option, pass_state
from hitlgate.engine._files import write_file
from hitlgate.errors import EXIT_ERROR, EXIT_OK, InputError

FORMATS = ("text", "markdown", "json", "junit", "sarif", "github")


@click.command(
    "check",
    epilog=examples(
        "hitlgate policy check",
        "hitlgate policy check --base origin/main --format markdown",
        "hitlgate policy check --base main --replay audit.jsonl --fail-on any-change",
        "hitlgate policy check --format sarif > policy.sarif",
    ),
)
@click.option("--base", metavar="GIT_REF", help="Also diff the decisions against the project at this git ref.")
@click.option(
    # Not exists=True: a missing file is not_found and a directory invalid_replay, as the README lists them.
    "--replay", metavar="FILE", type=click.Path(path_type=Path),
    help="With --base: also replay these proposals (hitlgate audit export output, or JSON Lines of proposals).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Report format. --json means --format json and wins over any --format.")
@click.option(
    "--fail-on", type=click.Choice(["loosening", "any-change", "never"]), default="loosening", show_default=True,
    help="Which changed decisions fail the check: loosening (or an ambiguous change), any change, or none.",
)
@click.option(
    "--output", "outputs", multiple=True, metavar="FORMAT=FILE",
    help="Also write the report in FORMAT to FILE (repeatable), e.g. sarif=policy.sarif junit=policy.xml; "
         "an earlier report at FILE is replaced.",
)
@click.option("--coverage-threshold", type=FiniteRange(0, 100), metavar="PERCENT",
              help="Least opa test coverage (default: policy_check.coverage_threshold in hitlgate.yaml, else 80).")
@json_option
@pass_state
def check(
    state: CliState,
    base: str | None,
    replay: Path | None,
    fmt: str,
    fail_on: str,
    outputs: tuple[str, ...],
    coverage_threshold: float | None,
) -> None:
    """Validate a policy change: data, compile and lint, tests, and (with --base) the decisions it changes.

    Reports every failure, each with its file and line: the inventory and
    scenario files, opa check --strict, opa fmt --list, the embedded
    engine's compile, the subset lint, Regal (when installed), opa test with
    its coverage, and the scenario corpus on both engines. With --base, the
    project at GIT_REF is built in a temporary git worktree and both sides
    decide the scenario corpus, the --replay proposals and every inventory
    target x action type x requester kind; each changed decision is
    reported, grouped, as loosening or tightening. The Markdown report is
    appended to $GITHUB_STEP_SUMMARY when that is set.

    \b
    Exit codes:
      0  every check passed and no change --fail-on forbids
      1  a check failed, or a changed decision --fail-on forbids
      2  usage or environment error (a ref that does not exist, OPA missing)
    """
    from hitlgate.engine.decide._policycheck import run_checks
    from hitlgate.engine.decide._policyreport import markdown, render

    if replay is not None and base is None:
        raise InputError("--replay needs --base: a replay compares the decisions of two projects",
                         code="replay_needs_base")
    if state.json:
        fmt = "json"
    extra = [_output(spec) for spec in outputs]
    config = state.config
    located = replayed = None
    if base is not None:
        from hitlgate.engine.decide._policydiff import locate_base, read_replay, run_diff

        # A missing ref or repository, or an unreadable replay file, is a usage error: say so before the checks.
        located = locate_base(config, base)
        replayed = read_replay(replay, config) if replay is not None else None
    report = run_checks(config, coverage_threshold=coverage_threshold)
    report.repo_root = _repository_top(config)
    if base is not None:
        report.diff = run_diff(config, base, fail_on=fail_on, located=located, replay_read=replayed)
        report.steps.extend(report.diff.steps())
    click.echo(render(report, fmt).rstrip("\n"))
    for kind, path in extra:
        write_file(path, render(report, kind).rstrip("\n") + "\n", secret=False, overwrite=True,
                   what=f"{kind} report")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(markdown(report))
        except OSError as exc:
            click.echo(f"warning: cannot append to $GITHUB_STEP_SUMMARY ({summary}): {exc}", err=True)
    click.get_current_context().exit(EXIT_OK if report.ok else EXIT_ERROR)


def _repository_top(config: object) -> str | None:
    """The git work tree's top, for paths in SARIF and GitHub annotations; None outside a repository."""
    from hitlgate.engine.decide._policydiff import repository_root

    source = getattr(config, "source", None)
    try:
        return str(repository_root(source.parent if source is not None else Path.cwd()))
    except InputError:
        return None


def _output(spec: str) -> tuple[str, Path]:
    """``FORMAT=FILE``, checked before any check runs: a report replaces an earlier regular file only."""
    kind, sep, path = spec.partition("=")
    if not sep or kind not in FORMATS or not path:
        raise click.BadParameter(f"{spec!r}: expected FORMAT=FILE with FORMAT one of {', '.join(FORMATS)}",
                                 param_hint="--output")
    target = Path(path).expanduser()
    try:
        st = target.lstat()
    except FileNotFoundError:
        return kind, target
    except OSError as exc:
        raise InputError(f"--output {spec}: cannot write {target}: {exc.strerror or exc}", code="unsafe_path") from exc
    if stat.S_ISLNK(st.st_mode):
        raise InputError(f"--output {spec}: {target} is a symbolic link", code="unsafe_path")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"--output {spec}: {target} is not a regular file (a directory?)", code="unsafe_path")
    return kind, target


@click.command(
    "fmt",
    epilog=examples("hitlgate policy fmt", "hitlgate policy fmt --write", "hitlgate policy fmt --check a.rego b.rego"),
)
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--check", "check_", is_flag=True, help="List files opa fmt would change (the default).")
@click.option("--write", is_flag=True, help="Rewrite the files as opa fmt formats them (never through a symlink).")
@click.option("--diff", is_flag=True, help="Print what opa fmt would change, as a unified diff.")
@json_option
@pass_state
def fmt(state: CliState, paths: tuple[Path, ...], check_: bool, write: bool, diff: bool) -> None:
    """Format Rego with opa fmt: the pack's modules and tests, or PATHS.

    --check, --write and --diff exclude each other.

    \b
    Exit codes:
      0  every file is formatted (or, with --write, has been)
      1  a file is not formatted (--check, --diff)
      2  usage or environment error: opa_missing, tool_not_runnable, rego_parse_error (OPA's messages
         with file and line follow), bad_encoding, unsafe_path (--write on a symbolic link)
    """
    if check_ + write + diff > 1:
        raise click.UsageError("--check, --write and --diff exclude each other: give one")
    mode = "write" if write else "diff" if diff else "check"
    from hitlgate.engine.decide._policyfmt import format_rego

    targets = list(paths) or [state.config.policy_dir]
    result = format_rego(targets, mode)
    if state.json:
        echo_json(result.to_dict())
    else:
        if result.output:
            click.echo(result.output.rstrip("\n"))
        for name in result.files:
            click.echo(("formatted " if mode == "write" else "needs formatting: ") + name)
        if not result.files:
            click.echo("all files formatted")
    click.get_current_context().exit(EXIT_ERROR if result.files and mode != "write" else EXIT_OK)


def register(cli: click.Group) -> None:
    """Add ``check`` and ``fmt`` to the ``policy`` group."""
    group = cli.commands["policy"]
    assert isinstance(group, click.Group)  # noqa: S101 - registered by _decide first.
    group.add_command(check)
    group.add_command(fmt)

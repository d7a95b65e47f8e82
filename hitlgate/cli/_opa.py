"""CLI commands of the OPA integration: ``policy bundle``, ``doctor`` and ``opa install``."""

from __future__ import annotations

from pathlib import Path

import click

from hitlgate.cli._common import CliState, OutFile, echo_json, examples, json_option, pass_state
from hitlgate.engine._files import write_file
from hitlgate.engine.decide._bundle import build_bundle
from hitlgate.engine.decide._doctor import BackendReport, diagnose
from hitlgate.engine.decide.policy import PolicyPack
from hitlgate.errors import EXIT_ERROR, EXIT_POLICY_BROKEN, BackendUnavailable


@click.command(
    "bundle",
    epilog=examples("hitlgate policy bundle --out bundle.tar.gz", "opa run --server --bundle bundle.tar.gz"),
)
@click.option(
    "--out",
    "out",
    required=True,
    type=OutFile(path_type=Path),
    help="Where to write the bundle (FILE.tar.gz).",
)
@json_option
@pass_state
def policy_bundle(state: CliState, out: Path) -> None:
    """Build a standard OPA bundle of the policy pack's modules.

    The bundle holds the non-test .rego modules and a .manifest whose
    revision is the modules revision; the inventory stays local (the
    engine sends OPA each target's facts in the input, so an inventory
    change needs no new bundle). The inventory is still loaded and checked.
    Serve it with `opa run --server --bundle FILE`.
    The same pack always gives a byte-identical file. An existing bundle
    file is replaced atomically (a bundle is a build output), a symbolic
    link is refused. Exit code 0, 5 when the pack does not load, 2 when
    --out cannot be written.
    """
    config = state.config
    pack = PolicyPack.load(config.policy_dir, config.data_paths, limits=config.limits)
    # Replacing is the normal case (CI rebuilds it); the rename keeps an OPA
    # server polling the path from reading half a bundle.
    write_file(out, build_bundle(pack), secret=False, overwrite=True, what="bundle")
    if state.json:
        echo_json({"out": str(out), "revision": pack.modules_revision, "policy_revision": pack.revision})
    else:
        click.echo(f"wrote {out} (modules revision {pack.modules_revision}; policy_revision {pack.revision})")


def _render(report: BackendReport) -> str:
    served = ", ".join(report.served_revisions) or "-"
    # "opa at http://...", but "embedded in process (/path)", not "embedded at in process".
    where = report.location if report.location.startswith("in process") else f"at {report.location}"
    lines = [
        f"backend:        {report.backend} {where}",
        f"answers:        {'yes' if report.answers else 'no'}"
        + (f" ({report.latency_ms} ms)" if report.latency_ms is not None else ""),
        f"serves:         {served}",
        f"local pack:     {report.local_revision or '-'}",
        f"matches:        {'yes' if report.matches else 'no'}",
        f"decision rule:  {'defined' if report.decision_defined else 'undefined or not reached'}",
        f"status:         {'healthy' if report.healthy else 'NOT HEALTHY (decisions fail closed to deny)'}",
    ]
    lines += [f"  - {p}" for p in report.problems]
    lines.append(f"production:     {'ready' if report.production_ready else 'NOT READY'}")
    lines += [f"  - {p}" for p in report.not_production_ready]
    if report.notifications is not None:
        dead = report.notifications["dead"]
        lines.append(f"notifications:  {dead['count']} dead letter(s)")
    if report.warnings:
        lines.append("warnings:")
        lines += [f"  - {w}" for w in report.warnings]
    return "\n".join(lines)


def _doctor_command() -> click.Command:
    # The backend options are the ones `decide` takes, so `doctor` checks
    # exactly the backend a `decide` with the same flags would use.
    from hitlgate.cli._decide import _config_with_backend, backend_options

    @click.command("doctor", epilog=examples("hitlgate doctor", "hitlgate --json doctor --opa-url http://127.0.0.1:8181"))
    @json_option
    @backend_options
    @pass_state
    def doctor(
        state: CliState,
        backend: str | None,
        opa_url: str | None,
        opa_timeout_ms: int | None,
    ) -> None:
        """Check the configured policy backend: does it answer, which revision, does it match.

        Also says whether the setup is production-ready (no example pack, no
        demo keys), warns about a state database others can read, and counts
        the notifications' dead letters (showing the latest).

        \b
        Exit codes:
          0  healthy and production-ready
          5  the local policy pack does not load
          1  otherwise: unreachable, stale revision, undefined decision, a
             database inventory that was never imported (inventory.source:
             database; run `hitlgate inventory import`), or a demo stand-in
             (the bundled example pack, approvers with demo keys)
        """
        config = _config_with_backend(state.config, backend, opa_url, opa_timeout_ms)
        report = diagnose(config)
        if state.json:
            echo_json(report.to_dict())
        else:
            click.echo(_render(report))
        if not report.production_ready:
            click.get_current_context().exit(EXIT_POLICY_BROKEN if report.local_revision is None else EXIT_ERROR)

    return doctor


@click.group("opa", epilog=examples("hitlgate opa install"))
def opa_group() -> None:
    """The pinned OPA binary (for the Rego unit tests and the OPA server backend)."""


@opa_group.command(
    "install", epilog=examples("hitlgate opa install", 'export HITLGATE_OPA="$(hitlgate opa install)"')
)
@json_option
@pass_state
def opa_install(state: CliState) -> None:
    """Build the pinned OPA with `go install` into the cache, unless it is there; print its path.

    The binary goes to $HITLGATE_CACHE/opa/VERSION/bin/opa (default
    ~/.cache/hitlgate), the cache scripts/install-opa fills and `policy test`
    looks in. The first build needs Go 1.21 or newer and takes 2-5 minutes
    on an idle machine, much longer on a busy one (15 minutes or more on a
    loaded 2-core host); progress goes to stderr, the path alone to stdout
    ({path, version, built} with --json). Any other opa works too: put it
    on PATH or set HITLGATE_OPA.

    \b
    Exit codes:
      0  the binary is in the cache (built now or before)
      1  the build failed (no Go, no network)
    """
    from hitlgate.engine.decide._opabin import OPA_VERSION, OpaInstallError, cached_opa_path, install, reports_version

    built = not reports_version(cached_opa_path())
    try:
        path = install(say=lambda line: click.echo(f"opa install: {line}", err=True))
    except OpaInstallError as exc:
        raise BackendUnavailable(str(exc), code=exc.code) from exc
    if state.json:
        echo_json({"path": str(path), "version": OPA_VERSION, "built": built})
        return
    if not built:
        click.echo(f"opa install: OPA {OPA_VERSION} is already in the cache", err=True)
    click.echo(str(path))


def register(cli: click.Group) -> None:
    """Add ``policy bundle``, ``doctor`` and ``opa install`` to the root group."""
    policy = cli.commands.get("policy")
    if not isinstance(policy, click.Group):
        policy = click.Group("policy", help="Validate and package the policy pack.")
        cli.add_command(policy)
    policy.add_command(policy_bundle)
    cli.add_command(_doctor_command())
    cli.add_command(opa_group)

"""CLI commands of the core: ``decide``, ``policy test``, ``init``, ``demo``."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from hitlgate.cli._common import (
    CliState,
    bullet,
    current_limits,
    decision_exit_code,
    echo_json,
    examples,
    json_option,
    pass_state,
    read_json_arg,
)
from hitlgate.engine import BackendConfig, Config, Decider, Decision, Proposal
from hitlgate.engine._files import write_file
from hitlgate.engine._resources import bundled_policy_dir, starter_policy_dir
from hitlgate.errors import EXIT_REFUSED, ConfigError, InputError

TIER_LABEL = {
    "auto_allow": "AUTO-ALLOW",
    "single_approval": "SINGLE APPROVAL",
    "dual_approval": "DUAL APPROVAL",
    "deny": "DENY",
}


def describe_duration(seconds: int) -> str:
    """A duration for people: ``2 h``, ``30 min``, ``45 s``."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def describe_quorum(decision: Decision) -> str:
    """Who must approve, e.g. ``2 distinct approvals: someone with the role security; a member of team-payments``."""
    q = decision.quorum
    if not q.required:
        return "none"
    who = "; ".join(s.describe() for s in q.slots)
    plural = "s" if q.required != 1 else ""
    return f"{q.required} distinct approval{plural}" + (f": {who}" if who else "")


def describe_controls(decision: Decision) -> str:
    """The framework references with their frameworks' names, e.g. ``OWASP Agentic AI Top 10 A-03``."""
    return ", ".join(
        f"{c.get('framework')} {c.get('id')}" if c.get("framework") else str(c.get("id"))
        for c in decision.controls
    ) or "none"


def format_decision(proposal: Proposal, decision: Decision, backend: str | None = None) -> str:
    """Human-readable rendering of one decision."""
    br = decision.blast_radius
    lines = [
        f"{proposal.action_type} on {proposal.target}",
        f"  tier:          {TIER_LABEL[decision.tier]}",
        f"  risk factors:  {', '.join(decision.risk_factors) or 'none'}",
        f"  quorum:        {describe_quorum(decision)}",
        f"  blast radius:  workloads: {', '.join(br['workloads']) or '-'};"
        f" partners: {', '.join(br['partners']) or '-'}",
        "  reasons:",
        *(bullet(r) for r in decision.reasons),
        f"  controls:      {describe_controls(decision)}",
    ]
    # The request's TTL is the approval window; an auto-allow or a deny has
    # no window to show.
    if decision.needs_approval:
        lines.append(f"  window:        {describe_duration(decision.ttl_seconds)} to approve ({decision.ttl_seconds}s)")
    lines.append(f"  policy:        {decision.policy_revision}" + (f" ({backend})" if backend else ""))
    if decision.fail_closed is not None:
        lines.append(f"  FAILED CLOSED: {decision.fail_closed['code']} (the policy did not decide this deny)")
    return "\n".join(lines)


def _config_with_backend(
    config: Config, backend: str | None, opa_url: str | None, timeout_ms: int | None
) -> Config:
    if backend is None and opa_url is None and timeout_ms is None:
        return config
    kind = backend or ("opa" if opa_url else config.backend.kind)
    url = opa_url or config.backend.url
    if kind == "opa" and not url:
        raise ConfigError("--backend opa needs --opa-url or backend.url in hitlgate.yaml")
    return dataclasses.replace(
        config,
        backend=BackendConfig(kind=kind, url=url, timeout_ms=timeout_ms or config.backend.timeout_ms),
    )


def backend_options(f: Any) -> Any:
    """The ``--backend/--opa-url/--opa-timeout-ms`` options shared by commands that decide."""
    f = click.option("--opa-timeout-ms", type=click.IntRange(1, 60000), help="OPA request timeout.")(f)
    f = click.option("--opa-url", help="OPA server URL (implies --backend opa).")(f)
    f = click.option(
        "--backend", type=click.Choice(["embedded", "opa"]), help="Rego engine (default: from config, else embedded)."
    )(f)
    return f


@click.command(
    epilog=examples(
        "hitlgate decide proposal.json",
        "hitlgate --json decide - < proposal.json",
    )
)
@click.argument("proposal_file", metavar="PROPOSAL.json")
@json_option
@backend_options
@pass_state
def decide(
    state: CliState,
    proposal_file: str,
    backend: str | None,
    opa_url: str | None,
    opa_timeout_ms: int | None,
) -> None:
    """Decide one proposal (PROPOSAL.json, or - for stdin) and print the decision.

    Nothing is stored; 'hitlgate propose' starts an approval. The proposal
    format: 'hitlgate schema proposal' prints its JSON Schema.

    \b
    Exit codes:
      0  auto_allow
      3  deny: the policy said no
      4  approval required (single_approval or dual_approval)
      5  policy broken: the engine failed closed to deny (see fail_closed)
      1  backend unavailable: failed closed to deny; the decision is printed
      2  invalid proposal
    """
    proposal = Proposal.from_dict(read_json_arg(proposal_file, "proposal"), limits=current_limits())
    config = _config_with_backend(state.config, backend, opa_url, opa_timeout_ms)
    decider = Decider.from_config(config)
    try:
        decision = decider.decide_validated(proposal)
    finally:
        decider.close()
    if state.json:
        echo_json(decision.to_dict())
    else:
        click.echo(format_decision(proposal, decision, decider.backend.name))
    click.get_current_context().exit(decision_exit_code(decision))


@click.group(epilog=examples("hitlgate policy test", "hitlgate policy check --base origin/main",
                             "hitlgate policy fmt --write", "hitlgate policy bundle --out bundle.tar.gz"))
def policy() -> None:
    """Test, check, format and package the policy pack (check is the CI gate: every check, and --base diffs)."""


@policy.command(
    "test",
    epilog=examples("hitlgate policy test", "hitlgate --config proj/hitlgate.yaml policy test --json --no-rego-tests"),
)
@click.option("--no-rego-tests", is_flag=True, help="Only run the scenario corpus (no OPA binary needed).")
@json_option
@backend_options
@pass_state
def policy_test(
    state: CliState,
    no_rego_tests: bool,
    backend: str | None,
    opa_url: str | None,
    opa_timeout_ms: int | None,
) -> None:
    """Check the pack, run its Rego unit tests (opa test) and its scenario corpus.

    A pack that does not load or compile is reported once, each problem as
    file:line:col, and nothing else runs. Otherwise names each failing Rego
    test once (file:line and the expression that failed; -v adds opa's full
    trace) and each failing case; cases that failed closed for the same
    reason are reported together.

    \b
    Exit codes:
      0  every test and scenario passed
      3  a Rego unit test or a scenario failed
      5  the pack does not load or compile
      1  the opa binary is missing or could not run
    """
    from hitlgate.engine.decide._policytest import run_policy_test

    as_json = state.json
    config = _config_with_backend(state.config, backend, opa_url, opa_timeout_ms)
    result = run_policy_test(config, rego_tests=not no_rego_tests, verbose=state.verbose)
    scenarios = result.scenarios
    groups = result.failed_closed_groups()
    grouped = {case for g in groups for case in g.cases}
    if as_json:
        report: dict[str, Any] = {
            "ok": result.ok,
            "policy": str(config.policy_dir),
            "scenarios": str(config.scenario_dir),
            "backend": result.backend,
        }
        if result.rego is not None:
            report["rego_tests"] = {
                "ok": result.rego.ok,
                "count": result.rego.tests,
                "failed": result.rego.failed,
                "failures": [
                    {"name": f.name, "file": f.file, "line": f.line, "message": f.message} for f in result.rego.failures
                ],
            }
            if result.rego.output:
                report["rego_tests"]["output"] = result.rego.output
        report["scenario_results"] = {
            "passed": len(scenarios.passed),
            "failed": [
                {"case": f.scenario.name, "problems": list(f.problems), "reasons": list(f.decision.reasons)}
                for f in scenarios.failed
            ],
            "failed_closed": [{"reason": g.reason, "cases": list(g.cases)} for g in groups],
        }
        echo_json(report)
    else:
        if result.rego is not None:
            if result.rego.ok:
                click.echo(f"rego unit tests: ok ({result.rego.tests} tests)")
            else:
                if result.rego.output:
                    click.echo(result.rego.output.rstrip())
                for failure in result.rego.failures:
                    click.echo(f"FAIL {failure.name} ({failure.file}:{failure.line})")
                    click.echo(f"    {failure.message}")
                click.echo(f"rego unit tests: FAILED ({result.rego.failed} of {result.rego.tests} tests failed)")
        for f in scenarios.failed:
            if f.scenario.name in grouped:
                continue
            click.echo(f"FAIL {f.scenario.name}")
            for p in f.problems:
                click.echo(f"    {p}")
        for g in groups:
            ids = [case.split(": ", 1)[0] for case in g.cases]
            shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
            cases = "1 case" if len(ids) == 1 else f"{len(ids)} cases"
            click.echo(f"FAIL {cases} failed closed: {g.reason.removeprefix('fail closed: ')}")
            click.echo(f"    {shown}")
        if not scenarios.passed and not scenarios.failed:
            click.echo(f"no scenarios found in {config.scenario_dir}")
        click.echo(
            f"scenarios: {len(scenarios.passed)} passed, {len(scenarios.failed)} failed ({result.backend} backend)"
        )
    if not result.ok:
        click.get_current_context().exit(EXIT_REFUSED)


STARTER_CONFIG = """\
# hitlgate project configuration. Relative paths are relative to this file.
policy: policies            # Rego modules (*.rego) and their unit tests (*_test.rego)
data: [policies/data]       # trusted inventory YAML
scenarios: policies/scenarios
backend:
  kind: embedded            # or: {kind: opa, url: "http://127.0.0.1:8181", timeout_ms: 500}
state: sqlite:///state/hitlgate.db
keys: keys                  # engine signing keys (created on first use, mode 0600)
warrant_ttl_seconds: 300    # warrant lifetime when the policy gives none (minutes, not hours)
# Remind, escalate (to teams.<team>.escalation in the inventory) and warn
# about requests still waiting for approval; `hitlgate serve` ticks by itself,
# without a server run `hitlgate tick` from cron.
# reminders:
#   single_approval: {remind_after_minutes: 15, escalate_after_minutes: 45, warn_before_expiry_minutes: 10}
#   dual_approval: {remind_after_minutes: 30, escalate_after_minutes: 90, warn_before_expiry_minutes: 20}
# The approvers' console and its passkeys (`hitlgate serve`, `hitlgate approvers
# enroll`) need the address approvers open, with a host name (not an IP address);
# notifications (README "Notifications") link to it.
# server:
#   public_url: http://localhost:8080
# Risk factors your own rules add to the built-in ones (policies/crown_jewel.rego
# shows one). A factor a rule names that is neither built in nor listed here
# fails closed, so a typo cannot slip through.
risk_factors:
  - crown_jewel
"""


#: What ``init`` keeps out of version control: the engine's private signing
#: keys (and the audit anchor next to them), the state database, and any
#: approver key someone drops into the project by mistake, nor a warrant
#: (a bearer token until it is used or expires) saved with ``--out``.
GITIGNORE_LINES = (
    "# hitlgate: never commit private keys, warrants or the state database.",
    "/keys/",
    "/state/",
    "*.pem",
    "*.jws",
)

#: The example proposal ``init`` writes, so the first ``decide`` has something to decide.
EXAMPLE_PROPOSAL = {
    "action": {"type": "rotate_api_key", "target": "svc-payments-key", "parameters": {}},
    "requester": {"id": "soc-agent-7", "kind": "agent"},
    "justification": "Suspicious access to the card processor key",
    "incident": "INC-2042",
    "confidence": 0.87,
}


def _move_aside(path: Path) -> Path:
    """Rename ``path`` to ``path.replaced-<UTC time>`` (a free name) and return the new name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1000):
        # The process id keeps two runs in the same second apart (rename would replace what the other moved).
        aside = path.with_name(f"{path.name}.replaced-{stamp}" + (f"-{os.getpid()}-{n}" if n else ""))
        if not aside.exists() and not aside.is_symlink():
            path.rename(aside)
            return aside
    raise OSError(f"no free name to move {path} aside")


def _write_gitignore(path: Path) -> None:
    """Create ``path``, or append the lines it lacks, so an existing .gitignore keeps its own rules."""
    existing = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    missing = [line for line in GITIGNORE_LINES if line not in existing]
    if not missing:
        return
    prefix = "\n" if existing and existing[-1].strip() else ""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(prefix + "\n".join(missing) + "\n")


@click.command(epilog=examples("hitlgate init myproject", "cd myproject && hitlgate decide proposal.json"))
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing hitlgate.yaml and policies/ (the old ones are moved "
              "aside to NAME.replaced-TIME, never deleted).")
@json_option
@pass_state
def init(state: CliState, directory: Path, force: bool) -> None:
    """Write a starter project into DIRECTORY: config, policy pack, inventory, scenarios.

    Also writes an example proposal.json and a .gitignore that keeps the
    engine's private keys and the state database out of version control.
    Exit code 0, or 2 when DIRECTORY already holds a project (use --force)
    or cannot be written.

    The pack is the bundled example plus a custom risk factor end to end:
    an inventory label (policies/data/crown_jewels.yaml), the rule that turns
    it into the factor crown_jewel and requires dual approval
    (policies/crown_jewel.rego), its unit tests, a scenario file, and its
    declaration in hitlgate.yaml.
    """
    config_file = directory / "hitlgate.yaml"
    target = directory / "policies"
    if not force and (config_file.exists() or target.exists()):
        raise InputError(f"{directory} already has a hitlgate project (use --force to overwrite)", code="file_exists")
    moved: list[str] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        src = bundled_policy_dir()
        # --force replaces, it never deletes: rules, tests and inventory the user wrote stay on disk.
        for old in (target, config_file):
            if old.exists() or old.is_symlink():
                moved.append(str(_move_aside(old)))
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "__init__.py")
        shutil.copytree(src, target, ignore=ignore)
        shutil.copytree(starter_policy_dir(), target, ignore=ignore, dirs_exist_ok=True)
        write_file(config_file, STARTER_CONFIG, secret=False, what="config")
        example = directory / "proposal.json"
        if not example.exists():
            write_file(
                example, json.dumps(EXAMPLE_PROPOSAL, indent=2) + "\n", secret=False, what="example proposal",
                if_exists="it appeared while init ran; it is left as it is",
            )
        _write_gitignore(directory / ".gitignore")
    except OSError as exc:
        raise InputError(f"cannot write the project into {directory}: {exc.strerror or exc}") from exc
    if state.json:
        echo_json({"directory": str(directory), "config": str(config_file), "policy": str(target),
                   "example_proposal": str(directory / "proposal.json"), "moved_aside": moved,
                   "next": [f"cd {directory}", "hitlgate decide proposal.json", "hitlgate policy test"]})
        return
    for path in moved:
        click.echo(f"moved the previous {Path(path).name.rsplit('.replaced-', 1)[0]} aside to {path}")
    click.echo(f"wrote {directory}/: hitlgate.yaml, policies/ (Rego pack, inventory, scenarios), "
               "proposal.json, .gitignore")
    click.echo("the approvers in policies/data/inventory.yaml have DEMO keys (public seed): replace each")
    click.echo("public_key with one from `hitlgate keys generate --out ~/.hitlgate/NAME.pem` before real use.")
    click.echo("next:")
    click.echo(f"  cd {directory}")
    click.echo("  hitlgate decide proposal.json")
    click.echo("  hitlgate policy test    # the Rego unit tests need OPA: `hitlgate opa install`,")
    click.echo("                          # or any opa on PATH or in $HITLGATE_OPA")


def register(cli: click.Group) -> None:
    """Add the core commands to the root group."""
    from hitlgate.cli._demo import demo

    cli.add_command(decide)
    cli.add_command(policy)
    cli.add_command(init)
    cli.add_command(demo)

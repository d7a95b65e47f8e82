"""CLI commands of the core: ``decide``, ``policy test``, ``init``, ``demo``."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import click

from hitlgate.cli._common import CliState, echo_json, pass_state, read_json_arg
from hitlgate.engine import BackendConfig, Config, Decider, Decision, Proposal
from hitlgate.engine._resources import bundled_policy_dir
from hitlgate.engine.scenarios import load_scenarios, run_scenarios
from hitlgate.errors import ConfigError, InputError

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
        *(f"    - {r}" for r in decision.reasons),
        f"  controls:      {describe_controls(decision)}",
    ]
    # The request's TTL is the approval window; an auto-allow or a deny has
    # no window to show.
    if decision.needs_approval:
        lines.append(f"  window:        {describe_duration(decision.ttl_seconds)} to approve ({decision.ttl_seconds}s)")
    lines.append(f"  policy:        {decision.policy_revision}" + (f" ({backend})" if backend else ""))
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


@click.command()
@click.argument("proposal_file", metavar="PROPOSAL.json")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@backend_options
@pass_state
def decide(
    state: CliState,
    proposal_file: str,
    as_json: bool,
    backend: str | None,
    opa_url: str | None,
    opa_timeout_ms: int | None,
) -> None:
    """Decide one proposal (PROPOSAL.json, or - for stdin) and print the decision.

    Exit code 0 with a decision (whatever its tier), 2 for an invalid
    proposal. A policy or backend failure is a deny decision, not a crash.
    """
    proposal = Proposal.from_dict(read_json_arg(proposal_file, "proposal"))
    config = _config_with_backend(state.config, backend, opa_url, opa_timeout_ms)
    decider = Decider.from_config(config)
    try:
        decision = decider.decide_validated(proposal)
    finally:
        decider.close()
    if as_json:
        echo_json(decision.to_dict())
    else:
        click.echo(format_decision(proposal, decision, decider.backend.name))


@click.group()
def policy() -> None:
    """Validate and package the policy pack."""


@policy.command("test")
@click.option("--no-rego-tests", is_flag=True, help="Only run the scenario corpus (no OPA binary needed).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report.")
@backend_options
@pass_state
def policy_test(
    state: CliState,
    no_rego_tests: bool,
    as_json: bool,
    backend: str | None,
    opa_url: str | None,
    opa_timeout_ms: int | None,
) -> None:
    """Run the Rego unit tests (opa check + opa test) and the scenario corpus.

    Exits non-zero on any failure, naming each failing case.
    """
    from hitlgate.engine._policytest import run_rego_tests

    config = _config_with_backend(state.config, backend, opa_url, opa_timeout_ms)
    ok = True
    report: dict[str, Any] = {"policy": str(config.policy_dir), "scenarios": str(config.scenario_dir)}
    if not no_rego_tests:
        rego = run_rego_tests(config.policy_dir)
        report["rego_tests"] = {"ok": rego.ok, "count": rego.tests, "output": rego.output}
        ok &= rego.ok
        if not as_json:
            status = "ok" if rego.ok else "FAILED"
            click.echo(f"rego unit tests: {status} ({rego.tests} tests)")
            if not rego.ok:
                click.echo(rego.output.rstrip())
    scenarios = load_scenarios([config.scenario_dir])
    decider = Decider.from_config(config)
    try:
        result = run_scenarios(decider, scenarios)
    finally:
        decider.close()
    ok &= result.ok
    report["scenario_results"] = {
        "passed": len(result.passed),
        "failed": [
            {"case": f.scenario.name, "problems": list(f.problems), "reasons": list(f.decision.reasons)}
            for f in result.failed
        ],
    }
    report["ok"] = ok
    if as_json:
        echo_json(report)
    else:
        for f in result.failed:
            click.echo(f"FAIL {f.scenario.name}")
            for p in f.problems:
                click.echo(f"    {p}")
        if not scenarios:
            click.echo(f"no scenarios found in {config.scenario_dir}")
        click.echo(
            f"scenarios: {len(result.passed)} passed, {len(result.failed)} failed ({decider.backend.name} backend)"
        )
    if not ok:
        raise SystemExit(1)


STARTER_CONFIG = """\
# hitlgate project configuration. Relative paths are relative to this file.
policy: policies            # Rego modules (*.rego) and their unit tests (*_test.rego)
data: [policies/data]       # trusted inventory YAML
scenarios: policies/scenarios
backend:
  kind: embedded            # or: {kind: opa, url: "http://127.0.0.1:8181", timeout_ms: 500}
state: sqlite:///state/hitlgate.db
keys: keys                  # engine signing keys (created on first use, mode 0600)
warrant_ttl_seconds: 300    # warrants live minutes, not hours
"""


#: What ``init`` keeps out of version control: the engine's private signing
#: keys (and the audit anchor next to them), the state database, and any
#: approver key someone drops into the project by mistake.
GITIGNORE_LINES = (
    "# hitlgate: never commit private keys or the state database.",
    "/keys/",
    "/state/",
    "*.pem",
)

#: The example proposal ``init`` writes, so the first ``decide`` has something to decide.
EXAMPLE_PROPOSAL = {
    "action": {"type": "rotate_api_key", "target": "svc-payments-key", "parameters": {}},
    "requester": {"id": "soc-agent-7", "kind": "agent"},
    "justification": "Suspicious access to the card processor key",
    "incident": "INC-2042",
    "confidence": 0.87,
}


def _write_gitignore(path: Path) -> None:
    """Create ``path``, or append the lines it lacks, so an existing .gitignore keeps its own rules."""
    existing = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    missing = [line for line in GITIGNORE_LINES if line not in existing]
    if not missing:
        return
    prefix = "\n" if existing and existing[-1].strip() else ""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(prefix + "\n".join(missing) + "\n")


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing hitlgate.yaml and policy pack.")
def init(directory: Path, force: bool) -> None:
    """Write a starter project into DIRECTORY: config, policy pack, inventory, scenarios.

    Also writes an example proposal.json and a .gitignore that keeps the
    engine's private keys and the state database out of version control.
    """
    config_file = directory / "hitlgate.yaml"
    target = directory / "policies"
    if not force and (config_file.exists() or target.exists()):
        raise InputError(f"{directory} already has a hitlgate project (use --force to overwrite)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        src = bundled_policy_dir()
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(
            src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "__init__.py")
        )
        config_file.write_text(STARTER_CONFIG, encoding="utf-8")
        example = directory / "proposal.json"
        if not example.exists():
            example.write_text(json.dumps(EXAMPLE_PROPOSAL, indent=2) + "\n", encoding="utf-8")
        _write_gitignore(directory / ".gitignore")
    except OSError as exc:
        raise InputError(f"cannot write the project into {directory}: {exc.strerror or exc}") from exc
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

"""``hitlgate demo``: the seed document's five situations on the example pack."""

from __future__ import annotations

import json

import click

from hitlgate.cli._common import CliState, pass_state
from hitlgate.cli._decide import format_decision
from hitlgate.engine import Config, Decider
from hitlgate.engine._resources import bundled_scenario_dir
from hitlgate.engine.scenarios import Scenario, load_scenarios

#: The seed's five situations, in order, as (title, notes of the cases in seed.yaml).
SEED_SITUATIONS = (
    ("1. Anomalous token use on a service account", ("Seed 1:",)),
    ("2. Rotating a high-privilege API key used by a critical integration", ("Seed 2:",)),
    ("3. Isolating a workload after secret leakage (customer-facing or not)", ("Seed 3a:", "Seed 3b:", "Seed 3c:")),
    ("4. Disabling a partner's federated credentials (without / with fallback)", ("Seed 4a:", "Seed 4b:")),
    ("5. A low-risk, non-production action", ("Seed 5:",)),
)


def seed_cases() -> list[tuple[str, list[Scenario]]]:
    """The seed scenarios from the bundled corpus, grouped by situation."""
    cases = load_scenarios([bundled_scenario_dir() / "seed.yaml"])
    out = []
    for title, prefixes in SEED_SITUATIONS:
        out.append((title, [c for p in prefixes for c in cases if c.note.startswith(p)]))
    return out


@click.command()
@click.option("--decisions-only", is_flag=True, help="Only show the decisions; skip approvals, warrants and execution.")
@pass_state
def demo(state: CliState, decisions_only: bool) -> None:
    """Walk the seed's five scenarios on the bundled example pack (embedded engine).

    First the decision for each proposal; then each runs end to end in a
    temporary state directory: propose, sign approvals with the demo approver
    keys, obtain the warrant, execute through the guard against a local demo
    executor, refuse a replay, and verify the audit chain.
    """
    # Always the bundled example pack and the embedded engine: the demo must
    # show the same thing on every machine, whatever hitlgate.yaml says.
    decider = Decider.from_config(Config())
    mismatches = 0
    situations = seed_cases()
    for title, cases in situations:
        click.secho(f"\n=== {title}", bold=True)
        for case in cases:
            decision = decider.decide_validated(case.proposal)
            click.echo(f"\n{case.note}")
            click.echo("proposal: " + json.dumps(case.proposal.to_dict(), separators=(", ", ": ")))
            click.echo(format_decision(case.proposal, decision, decider.backend.name))
            if decision.tier != case.want_tier:
                mismatches += 1
                click.secho(f"  !! expected {case.want_tier}", fg="red")
    if not decisions_only:
        from hitlgate.cli._demo_workflow import run_workflow_demo

        mismatches += run_workflow_demo(situations, decider=decider)
    decider.close()
    if mismatches:
        raise SystemExit(1)

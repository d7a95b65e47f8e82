"""``hitlgate demo``: the seed document's situations on the bundled example pack.

Each situation is decided, then (unless ``--decisions-only``) run end to end
by :mod:`hitlgate.cli._demo_workflow` in a temporary directory. The output
opens with what the demo shows and ends with three commands to try next.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import click

from hitlgate.cli._common import CliState, examples, json_option, narration_to_stderr_under_json, pass_state
from hitlgate.cli._decide import TIER_LABEL, describe_controls, describe_duration, describe_quorum
from hitlgate.engine import Config, Decider, Decision
from hitlgate.engine._resources import bundled_scenario_dir
from hitlgate.engine.decide.proposal import Proposal
from hitlgate.engine.decide.scenarios import Scenario, load_scenarios

#: The seed's five situations, in words, with the cases of seed.yaml that
#: play them out: (title, [(case note prefix, what differs in that case)]).
SEED_SITUATIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Anomalous token use on a service account: the agent wants to suspend it", (("Seed 1:", ""),)),
    (
        "Suspicious access to a high-privilege API key of a critical integration: rotate it",
        (("Seed 2:", ""),),
    ),
    (
        "A secret leaked from a workload: isolate the workload",
        (
            ("Seed 3a:", "a customer-facing workload"),
            ("Seed 3b:", "an internal production workload"),
            ("Seed 3c:", "a development sandbox"),
        ),
    ),
    (
        "A federated partner's identity provider is compromised: disable the partner's credentials",
        (("Seed 4a:", "a partner with no safe fallback"), ("Seed 4b:", "a partner with a safe fallback")),
    ),
    ("A low-risk action outside production: invalidate a leaked staging token", (("Seed 5:", ""),)),
)


def seed_cases() -> list[tuple[str, list[Scenario]]]:
    """The seed scenarios from the bundled corpus, grouped by situation."""
    cases = load_scenarios([bundled_scenario_dir() / "seed.yaml"])
    return [
        (title, [c for prefix, _ in parts for c in cases if c.note.startswith(prefix)])
        for title, parts in SEED_SITUATIONS
    ]


def _variant(case: Scenario) -> str:
    for _title, parts in SEED_SITUATIONS:
        for prefix, label in parts:
            if case.note.startswith(prefix):
                return label
    return ""


def _render(proposal: Proposal, decision: Decision) -> list[str]:
    doc = proposal.to_dict()
    who = f"{doc['requester']['kind']} {doc['requester']['id']}"
    incident = f" ({doc['incident']})" if doc.get("incident") else ""
    reasons = [r for r in decision.reasons if not r.startswith(("single approval:", "dual approval:", "two distinct"))]
    lines = [
        f"   proposal:  {proposal.action_type} on {proposal.target}, by {who}{incident}",
        f"   decision:  {TIER_LABEL[decision.tier]}",
    ]
    lines += [f"   {'because:' if i == 0 else '':<11}{r}" for i, r in enumerate(reasons or decision.reasons)]
    if decision.needs_approval:
        quorum = describe_quorum(decision).replace(":", f" within {describe_duration(decision.ttl_seconds)}:", 1)
        lines.append(f"   quorum:    {quorum}")
    lines.append(f"   controls:  {describe_controls(decision)}")
    return lines


def _hitlgate_on_path() -> bool:
    """Whether the ``hitlgate`` a user types next is this one (else they must activate the venv first)."""
    found = shutil.which("hitlgate")
    ours = Path(sys.prefix) / "bin" / "hitlgate"
    return found is not None and (not ours.exists() or Path(found).resolve() == ours.resolve())


def _activate_hint() -> str | None:
    if _hitlgate_on_path() or sys.prefix == sys.base_prefix:
        return None
    venv = Path(sys.prefix)
    try:
        shown = os.path.relpath(venv)
    except ValueError:
        shown = str(venv)
    if shown.startswith(".."):
        shown = str(venv)
    return f"source {shown}/bin/activate"


def _require_server_extra() -> None:
    """Refuse ``--over-http`` before the story starts when the server extra is not installed."""
    import importlib.util

    from hitlgate.cli._serve import INSTALL_HINT, ServeError

    missing = [m for m in ("fastapi", "uvicorn", "httpx") if importlib.util.find_spec(m) is None]
    if missing:
        raise ServeError(f"hitlgate demo --over-http needs the server extra ({', '.join(missing)} not installed): "
                         f"{INSTALL_HINT}", code="missing_extra")


#: The demo's two opening lines (the second ends with INTRO[2] unless --decisions-only).
INTRO = (
    "This demo shows how hitlgate decides what an AI agent may do to a non-human identity, and who must approve first.",
    "Five incident-response situations go through the bundled example policy pack",
    ", then run end to end (approve, warrant, execute).",
)

NEXT_STEPS = (
    ("hitlgate init my-project", "your own project: config, Rego pack, inventory, scenarios"),
    ("cd my-project && hitlgate decide proposal.json", "decide the example proposal it wrote"),
    ("hitlgate policy test", "Rego unit tests + scenario corpus (OPA: hitlgate opa install)"),
)


@click.command(epilog=examples("hitlgate demo", "hitlgate demo --decisions-only", "hitlgate demo --over-http"))
@click.option("--decisions-only", is_flag=True, help="Only show the decisions; skip approvals, warrants and execution.")
@click.option("--over-http", is_flag=True,
              help="Run the end-to-end part through the HTTP API: a real server on a loopback port, driven by "
                   "hitlgate.client with an agent, a viewer and an executor API key (needs the server extra).")
@json_option
@pass_state
@narration_to_stderr_under_json
def demo(state: CliState, decisions_only: bool, over_http: bool) -> None:
    """Walk five incident situations on the bundled example pack (embedded engine).

    \b
    The five situations, each an action an agent proposes:
      1. anomalous token use on a service account: suspend it
      2. suspicious access to a critical integration's high-privilege API key: rotate it
      3. a secret leaked from a workload: isolate the workload (customer-facing,
         internal production, development sandbox)
      4. a federated partner's identity provider is compromised: disable the
         partner's credentials (no safe fallback, safe fallback)
      5. a leaked staging token: invalidate it (low risk, outside production)

    Each proposal is decided, then runs end to end in a temporary directory
    (deleted afterwards): propose, sign approvals with the example
    approvers' demo keys, obtain the warrant, execute through the guard
    against a local demo executor, refuse a replay, and verify the audit
    chain. Demo keys count only here. With --over-http the same walk goes
    through `hitlgate serve`'s API on a loopback port (the agent proposes
    and fetches the warrant, approvals arrive as signed votes, the executor
    verifies and consumes the warrant and reports the outcome), as agents
    and executors in other processes would use it.

    Exit code 0, or 1 if any decision differs from the one the scenario
    corpus expects (or the server extra is missing for --over-http). With
    --json the story goes to stderr and stdout gets {"ok", "exit_code"}.
    """
    # Always the bundled example pack and the embedded engine: the demo must
    # show the same thing on every machine, whatever hitlgate.yaml says.
    if over_http:
        _require_server_extra()
    decider = Decider.from_config(Config())
    situations = seed_cases()
    click.secho(INTRO[0], bold=True)
    click.echo(INTRO[1] + (" (decisions only)." if decisions_only else INTRO[2]))
    tiers: Counter[str] = Counter()
    mismatches: list[str] = []
    revision = ""
    # The workflow half pulls in SQLAlchemy; import it only when the demo
    # runs, so registering the command keeps every other command's start-up fast.
    from hitlgate.cli._demo_workflow import DemoExecutor, DemoTally, demo_engine, demo_server, finish, walk, walk_http

    tally, executor = DemoTally(), DemoExecutor()
    try:
        with ExitStack() as stack:
            http = None
            if decisions_only:
                engine = None
            elif over_http:
                http = stack.enter_context(demo_server(decider))
                engine = http.engine
                click.echo(f"The end-to-end part goes through the HTTP API of a server at {http.url}.")
            else:
                engine = stack.enter_context(demo_engine(decider))
            for n, (title, cases) in enumerate(situations, 1):
                click.echo("")
                click.secho(f"{n}. {title}", bold=True)
                for letter, case in zip("abcdefgh", cases, strict=False):
                    variant = _variant(case)
                    if variant:
                        click.echo(f"  ({letter}) {variant}")
                    decision = decider.decide_validated(case.proposal)
                    revision = decision.policy_revision
                    tiers[decision.tier] += 1
                    for line in _render(case.proposal, decision):
                        click.echo(line)
                    if decision.tier != case.want_tier:
                        mismatches.append(f"{case.name}: expected {case.want_tier}, got {decision.tier}")
                        click.secho(f"   !! the corpus expects {case.want_tier}", fg="red")
                    if http is not None:
                        walk_http(http, case.proposal, executor, tally)
                    elif engine is not None:
                        walk(engine, case.proposal, executor, tally)
            click.echo("")
            counts = ", ".join(f"{tiers[t]} {TIER_LABEL[t].lower()}" for t in TIER_LABEL if tiers[t])
            click.echo(f"{sum(tiers.values())} proposals decided by the example pack "
                       f"(policy {revision[:19]}..., embedded engine): {counts}.")
            if engine is not None:
                report = finish(engine)
                click.echo(f"{tally.executed} actions ran, each only with its own warrant; "
                           f"{tally.replays_refused} replays refused.")
                click.echo(f"Audit chain verified: {report.events} events, {report.checkpoints} signed checkpoints "
                           "(in a temporary directory, now deleted).")
                mismatches += tally.problems
    finally:
        decider.close()
    for problem in mismatches:
        click.secho(f"!! {problem}", fg="red")
    click.echo("")
    click.secho("Try next:", bold=True)
    hint = _activate_hint()
    if hint:
        click.echo(f"  {hint:<48}# hitlgate is installed in this virtualenv")
    for command, why in NEXT_STEPS:
        click.echo(f"  {command:<48}# {why}")
    if mismatches:
        raise SystemExit(1)

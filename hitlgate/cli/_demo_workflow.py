"""The end-to-end part of ``hitlgate demo``: propose, approve, warrant, guard, audit.

:func:`run_workflow_demo` takes the seed scenarios through the whole
workflow on the bundled example pack, in a temporary state directory that is
deleted afterwards (never the user's state or keys). Approvals are signed
with the example inventory's *demo* approver keys, which are derived from a
public seed: ``sha256("hitlgate-demo-approver:" + name)`` is the Ed25519
private key. They exist only so the demo can sign; the inventory says to
replace them before real use.
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine import Config, Decider
from hitlgate.engine.approvals import Statement, sign
from hitlgate.engine.inventory import Approver
from hitlgate.engine.keys import public_raw
from hitlgate.engine.proposal import Proposal
from hitlgate.engine.quorum import assess
from hitlgate.engine.store import Request
from hitlgate.engine.workflow import Engine
from hitlgate.errors import HitlgateError, InvalidWarrant

DEMO_SEED_PREFIX = "hitlgate-demo-approver:"


def demo_approver_key(name: str) -> Ed25519PrivateKey:
    """The demo private key of an example-inventory approver (public seed: never use for real)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"{DEMO_SEED_PREFIX}{name}".encode()).digest())


def pick_approvers(req: Request, registry: Mapping[str, Approver]) -> list[str]:
    """The smallest set of registered approvers (not the requester) that meets the request's quorum."""
    quorum = req.decision.quorum
    people = [a for n, a in sorted(registry.items()) if n != req.requester]
    for size in range(quorum.required, len(people) + 1):
        for combo in itertools.combinations(people, size):
            if assess(quorum, list(combo)).met:
                return [a.name for a in combo]
    return []


class DemoExecutor:
    """A local executor that only says what it would do."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.ran: list[Mapping[str, Any]] = []

    def __call__(self, action: Mapping[str, Any]) -> str:
        """Pretend to run ``action``."""
        self.ran.append(action)
        params = f" with {dict(action['parameters'])}" if action["parameters"] else ""
        self.echo(f"    executor: would run {action['type']} on {action['target']}{params}")
        return "ok"


def _walk(engine: Engine, proposal: Proposal, want_tier: str, executor: DemoExecutor,
          echo: Callable[[str], None]) -> bool:
    req = engine.propose(proposal)
    echo(f"    proposed {req.id}: tier {req.tier}, status {req.status}")
    ok = req.tier == want_tier
    if not ok:
        echo(f"    !! expected tier {want_tier}")
    if req.status == "denied":
        echo(f"    denied: {req.decision.reasons[-1]}")
        try:
            engine.warrant(req.id)
            echo("    !! a warrant was issued for a denied request")
            return False
        except HitlgateError as exc:
            echo(f"    no warrant: {exc}")
        return ok
    if req.status == "pending":
        registry = engine.approvers.all()
        for name in pick_approvers(req, registry):
            statement = Statement(req.id, req.action_digest, "approve", name, engine.now())
            req = engine.approve(sign(statement, demo_approver_key(name)))
            echo(f"    {name} signed an approval -> {engine.progress(req.id).describe()}")
    if req.status != "granted":
        echo(f"    !! request ended {req.status}")
        return False
    w = engine.warrant(req.id)
    echo(f"    warrant {w.jti} (kid {w.kid[:12]}..., expires {w.expires_at:%H:%M:%S} UTC)")
    guard = engine.guard()
    guard.execute(w.token, proposal.action, executor)
    try:
        guard.execute(w.token, proposal.action, executor)
        echo("    !! the warrant was accepted twice")
        return False
    except InvalidWarrant as exc:
        echo(f"    replay refused: {exc}")
    echo(f"    status: {engine.get(req.id).status}")
    return ok


def run_workflow_demo(
    cases: Sequence[tuple[str, Sequence[Any]]],
    *,
    echo: Callable[[str], None] = click.echo,
    decider: Decider | None = None,
) -> int:
    """Run each seed case end to end; return the number of cases that went wrong.

    ``cases`` is ``[(title, [scenario, ...]), ...]`` as ``hitlgate demo``'s
    ``seed_cases()`` returns it (each scenario has ``note``, ``proposal`` and
    ``want_tier``). Everything happens in a temporary directory.
    """
    failures = 0
    with tempfile.TemporaryDirectory(prefix="hitlgate-demo-") as tmp:
        base = Path(tmp)
        config = Config(state_url=f"sqlite:///{base / 'state.db'}", key_dir=base / "keys")
        engine = Engine(config, decider if decider is not None else Decider.from_config(config))
        try:
            for name, approver in engine.approvers.all().items():
                if public_raw(demo_approver_key(name).public_key()) != public_raw(approver.public_key):
                    raise HitlgateError(f"the example inventory's key for {name} is not the demo key")
            executor = DemoExecutor(echo)
            echo(f"\n=== End to end (temporary state in {base}; deleted afterwards)")
            for title, scenarios in cases:
                echo(f"\n--- {title}")
                for case in scenarios:
                    echo(f"  {case.note}")
                    try:
                        if not _walk(engine, case.proposal, case.want_tier, executor, echo):
                            failures += 1
                    except HitlgateError as exc:
                        failures += 1
                        echo(f"    !! {type(exc).__name__}: {exc}")
            engine.checkpoint()
            report = engine.verify_audit()
            echo(f"\n{report.describe()}")
            echo(f"{len(executor.ran)} action(s) executed through the guard; {failures} problem(s)")
        finally:
            engine.store.close()
    return failures

"""The end-to-end part of ``hitlgate demo``: propose, approve, warrant, guard, audit.

:func:`demo_engine` opens an engine in demo mode on the bundled example pack,
in a temporary state directory that is deleted afterwards (never the user's
state or keys); :func:`walk` takes one proposal through the whole workflow
and says what happened. Approvals are signed with the example inventory's
*demo* approver keys (:mod:`hitlgate.engine.keys._demokeys`), which only an
engine in demo mode accepts.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from hitlgate.engine import Config, Decider
from hitlgate.engine.approve.approvals import Statement, sign
from hitlgate.engine.approve.quorum import assess
from hitlgate.engine.approve.workflow import AuditReport, Engine
from hitlgate.engine.config import sqlite_url
from hitlgate.engine.decide.inventory import Approver
from hitlgate.engine.decide.proposal import Proposal
from hitlgate.engine.keys._demokeys import demo_approver_key, is_demo_key
from hitlgate.engine.ledger.store import Request
from hitlgate.errors import HitlgateError, InvalidWarrant

__all__ = ["DemoExecutor", "DemoTally", "demo_approver_key", "demo_engine", "pick_approvers", "walk"]


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
    """A local executor that only records what it was asked to run."""

    def __init__(self) -> None:
        self.ran: list[Mapping[str, Any]] = []

    def __call__(self, action: Mapping[str, Any]) -> str:
        """Pretend to run ``action``."""
        self.ran.append(action)
        return "ok"


@dataclass
class DemoTally:
    """What the end-to-end walk did, for the demo's closing summary."""

    executed: int = 0
    replays_refused: int = 0
    denied_without_warrant: int = 0
    problems: list[str] = field(default_factory=list)


@contextmanager
def demo_engine(decider: Decider | None = None) -> Iterator[Engine]:
    """An engine in demo mode on the example pack, with state and keys in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="hitlgate-demo-") as tmp:
        base = Path(tmp)
        config = Config(state_url=sqlite_url(base / "state.db"), key_dir=base / "keys")
        engine = Engine(config, decider if decider is not None else Decider.from_config(config), demo=True)
        try:
            for name, approver in engine.approvers.all().items():
                if not is_demo_key(approver.public_key, (name,)):
                    raise HitlgateError(f"the example inventory's key for {name} is not its demo key")
            yield engine
        finally:
            engine.store.close()


def walk(
    engine: Engine,
    proposal: Proposal,
    executor: DemoExecutor,
    tally: DemoTally,
    echo: Callable[[str], None] = click.echo,
) -> None:
    """Take ``proposal`` through propose, demo-key approvals, warrant, guard and a replay; say what happened."""
    req = engine.propose(proposal)
    action = proposal.action
    if req.status == "denied":
        try:
            engine.warrant(req.id)
        except HitlgateError as exc:
            tally.denied_without_warrant += 1
            echo(f"   run:       no warrant: {exc}")
        else:
            tally.problems.append(f"{req.id}: a warrant was issued for a denied request")
        return
    first = "   run:       "
    if req.status == "pending":
        for name in pick_approvers(req, engine.approvers.all()):
            statement = Statement(req.id, req.action_digest, "approve", name, engine.now())
            req = engine.approve(sign(statement, demo_approver_key(name)))
            echo(f"{first}{name} signs an approval -> {engine.progress(req.id).describe()}")
            first = "              "
    else:
        echo(f"{first}granted at once (auto-allow): the warrant carries no approvals")
        first = "              "
    if req.status != "granted":
        tally.problems.append(f"{req.id}: the request ended {req.status}")
        return
    w = engine.warrant(req.id)
    echo(f"{first}warrant issued: single use, bound to this exact action, expires {w.expires_at:%H:%M:%S} UTC")
    guard = engine.guard()
    guard.execute(w.token, action, executor)
    tally.executed += 1
    echo(f"              the executor checks the warrant and runs {action['type']} on {action['target']}")
    try:
        guard.execute(w.token, action, executor)
    except InvalidWarrant as exc:
        tally.replays_refused += 1
        reason = "already used" if "already used" in str(exc) else str(exc)
        echo(f"              the same warrant a second time: refused ({reason})")
    else:
        tally.problems.append(f"{req.id}: the warrant was accepted twice")


def finish(engine: Engine) -> AuditReport:
    """Sign a checkpoint over the demo's audit chain and verify the whole chain."""
    engine.checkpoint()
    return engine.verify_audit()


def run_workflow_demo(
    cases: Sequence[tuple[str, Sequence[Any]]],
    *,
    echo: Callable[[str], None] = click.echo,
    decider: Decider | None = None,
) -> DemoTally:
    """Walk every case of ``[(title, [scenario, ...]), ...]`` end to end in a temporary directory."""
    tally = DemoTally()
    executor = DemoExecutor()
    with demo_engine(decider) as engine:
        for _title, scenarios in cases:
            for case in scenarios:
                walk(engine, case.proposal, executor, tally, echo)
        echo(finish(engine).describe())
    return tally


# -- the same walk over HTTP (hitlgate demo --over-http) ----------------------


@dataclass
class HttpDemo:
    """A demo engine served by a real ``hitlgate serve`` app on a loopback port, with the demo's API clients."""

    engine: Engine
    url: str
    agent: Any  # hitlgate.client.Client with the agent's key (the seed's requester, soc-agent-7)
    approvers: Any  # a client with a viewer key, through which the approvers' signed votes arrive
    executor: Any  # hitlgate.client.Client with the executor's key


@contextmanager
def demo_server(decider: Decider | None = None, agent: str = "soc-agent-7") -> Iterator[HttpDemo]:
    """Serve :func:`demo_engine` with uvicorn on 127.0.0.1 (a free port) in a thread; yield the API clients.

    The same FastAPI app as ``hitlgate serve``; the agent's and the executor's
    API keys are created on the demo's temporary store, like ``hitlgate apikey
    create``. The server stops when the block ends.
    """
    import threading

    try:
        import uvicorn

        from hitlgate.client import Client
        from hitlgate.service.app import create_app
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "hitlgate":
            raise
        from hitlgate.cli._serve import INSTALL_HINT, ServeError

        raise ServeError(f"hitlgate demo --over-http needs the server extra ({exc.name} is not installed): "
                         f"{INSTALL_HINT}", code="missing_extra") from None
    from hitlgate.cli._serve import listen
    from hitlgate.engine.keys.apikeys import ApiKeys

    with demo_engine(decider) as engine:
        keys = ApiKeys(engine)
        agent_token = keys.create(agent, "agent")[1]
        viewer_token = keys.create("demo-approvers", "viewer")[1]
        executor_token = keys.create("demo-executor", "executor")[1]
        sock = listen("127.0.0.1", 0)
        server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="hitlgate-demo-server",
                                  daemon=True)
        thread.start()
        try:
            # uvicorn sets ``started`` once it accepts connections; a thread that ended first failed to start.
            while not server.started and thread.is_alive():
                thread.join(0.02)
            if not server.started:
                from hitlgate.cli._serve import ServeError

                raise ServeError("the demo's server did not start (see the log above)", code="startup_failed")
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            with Client(url, api_key=agent_token) as agent_client, Client(url, api_key=viewer_token) as viewer, \
                    Client(url, api_key=executor_token) as executor_client:
                yield HttpDemo(engine, url, agent_client, viewer, executor_client)
        finally:
            server.should_exit = True
            thread.join(30)
            sock.close()


def walk_http(
    demo: HttpDemo,
    proposal: Proposal,
    executor: DemoExecutor,
    tally: DemoTally,
    echo: Callable[[str], None] = click.echo,
) -> None:
    """:func:`walk` through the HTTP API: the agent proposes, approvers vote, the executor verifies and consumes."""
    action = proposal.action
    body = {k: v for k, v in proposal.to_dict().items() if k != "requester"}
    req = demo.agent.propose(body, idempotency_key=f"demo-{proposal.digest.rsplit(':', 1)[-1][:32]}")
    rid = req["id"]
    first = "   http:      "
    echo(f"{first}POST /v1/requests (agent key) -> {rid}, {req['status']}")
    first = "              "
    if req["status"] == "denied":
        try:
            demo.agent.warrant(rid)
        except HitlgateError as exc:
            tally.denied_without_warrant += 1
            echo(f"{first}GET /v1/requests/{rid}/warrant -> refused ({exc.code})")
        else:
            tally.problems.append(f"{rid}: a warrant was issued for a denied request")
        return
    if req["status"] == "pending":
        stored = demo.engine.get(rid)
        for name in pick_approvers(stored, demo.engine.approvers.all()):
            statement = Statement(rid, req["action_digest"], "approve", name, demo.engine.now())
            # The signature authenticates the vote; the viewer key only carries it.
            demo.approvers.vote(rid, sign(statement, demo_approver_key(name)))
            req = demo.agent.get(rid)
            echo(f"{first}POST /v1/requests/{rid}/votes ({name}'s signed approval) -> "
                 f"{req['quorum_progress']['summary']}")
    if req["status"] != "granted":
        tally.problems.append(f"{rid}: the request ended {req['status']}")
        return
    w = demo.agent.warrant(rid)
    echo(f"{first}GET /v1/requests/{rid}/warrant -> a warrant, expires {w['expires_at']}")
    demo.executor.verify(w["token"], action, consume=True)
    executor(action)
    demo.executor.report_outcome(rid, w["jti"], "executed")
    tally.executed += 1
    echo(f"{first}POST /v1/warrants/verify (executor key, consume) -> valid; runs {action['type']} on "
         f"{action['target']}; reports executed")
    try:
        demo.executor.verify(w["token"], action, consume=True)
    except InvalidWarrant as exc:
        tally.replays_refused += 1
        echo(f"{first}the same warrant a second time -> refused ({exc.code})")
    else:
        tally.problems.append(f"{rid}: the warrant was accepted twice")

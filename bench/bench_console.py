"""The approvers' console at size: server time of the pending list and a request page with 10,000 pending requests.

    python -m bench.bench_console [--smoke] [--pending N] [--rounds N] [--no-postgresql] [--json]

Builds a real project (``hitlgate init`` with generated approver keys), asks
the real policy for a handful of decisions (single and dual approval on
several targets), then stores ``--pending`` pending requests made from them
in one transaction through the store's own ``insert_request`` (each with its
own id, creation time and window), so the store holds what 10,000 proposals
would leave, without 10,000 policy evaluations. One of the requests carries a
real Ed25519 approval recorded by the engine. On SQLite, then on a
throwaway PostgreSQL cluster (the test suite's helper), when one is installed.

Server time is the work of the route after its session check, measured in
process: the store reads, the quorum reports, the signature re-checks of the
request page and the template rendering (``console.render_pending`` and
``console.render_request``, the functions the routes run on a worker
thread). HTTP framing and the network are not in it. Each scenario is
called ``--rounds`` times, interleaved; p50 and p99 are reported in ms, of
wall time and of the serving thread's CPU time (on a shared, busy machine
the wall time is mostly the wait for a core).

Scenarios: the first page of the pending list; a page filtered by tier; by
target; by a team that no request names (the worst case: the team search
reads its bound of requests and stops); a deep page (a cursor half-way
down); the request page of a dual-approval request with one vote.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: The console goal of issue 12 (metric, op, target, description).
GOALS = [
    ("pending_list_p99_ms", "<=", 100.0, "console pending list, server time p99 with 10,000 pending, ms"),
    ("request_page_p99_ms", "<=", 100.0, "console request page, server time p99 with 10,000 pending, ms"),
]

#: Smoke: small and SQLite only (CI runs the whole suite's smoke under one time box).
SMOKE = {"pending": 300, "rounds": 10, "postgresql": False}
FULL = {"pending": 10_000, "rounds": 200}

#: (action type, target) pairs the policy decides once each; the stored requests cycle through them.
SHAPES = [
    ("revoke_secret", "svc-payments-key"),             # dual: security + team-payments
    ("disable_federated_credential", "fed-globex-settlement"),  # dual: security + partner_management
    ("revoke_secret", "svc-ledger-token"),             # single: security or team-payments
    ("suspend_service_account", "svc-ci-runner"),      # single: security or team-platform
    ("invalidate_tokens", "svc-reporting"),
    ("reduce_privileges", "staging-admin-sa"),
]


def _log_default(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p99_ms": round(p99 * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2)}


def run(mode: Any = "full", *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the console benchmark; ``mode`` is "smoke", "full" or a dict overriding :data:`FULL`."""
    from hitlgate.engine.approve.workflow import Engine
    from hitlgate.engine.config import load_config
    from tests.cli_project import make_project

    say = log or _log_default
    if mode == "smoke":
        opts = dict(SMOKE)
    elif mode == "full":
        opts = dict(FULL)
    elif isinstance(mode, dict):
        opts = {**(SMOKE if mode.get("smoke") else FULL), **{k: v for k, v in mode.items() if k != "smoke"}}
    else:
        raise ValueError(f"unknown mode {mode!r}: smoke, full or a dict of options")
    pending, rounds = int(opts["pending"]), int(opts["rounds"])
    result: dict[str, Any] = {"title": f"Approvers' console with {pending:,} pending requests", "options": opts}
    from tests._pgcluster import pg_bindir, running_cluster

    with tempfile.TemporaryDirectory(prefix="hitlgate-bench-console-") as tmp:
        project = make_project(Path(tmp))
        config = load_config(project.config)
        say(f"console: SQLite, {pending:,} pending requests")
        with Engine.from_config(config) as engine:
            result["sqlite"] = _measure(engine, project, pending, rounds, say)
        bindir = pg_bindir()
        if not opts.get("postgresql", True):
            result["postgresql"] = {"skipped": "--no-postgresql"}
        elif bindir is None:
            result["postgresql"] = {"missing": "PostgreSQL is not installed: run scripts/install-postgres"}
        else:
            with running_cluster(bindir) as cluster:
                say(f"console: PostgreSQL, {pending:,} pending requests")
                pg = dataclasses.replace(config, state_url=cluster.new_database())
                with Engine.from_config(pg) as engine:
                    result["postgresql"] = _measure(engine, project, pending, rounds, say)
    pages = [v for db in ("sqlite", "postgresql") for v in result[db].values() if isinstance(v, dict)]
    result["pending_list_p99_ms"] = max(v["p99_ms"] for v in pages if v["page"] == "list")
    result["request_page_p99_ms"] = max(v["p99_ms"] for v in pages if v["page"] == "request")
    return result


def _measure(engine: Any, project: Any, pending: int, rounds: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Store ``pending`` requests in ``engine``'s store, then time each page ``rounds`` times."""
    from datetime import UTC, datetime

    from hitlgate.engine.approve import lifecycle
    from hitlgate.engine.approve.approvals import Statement, sign
    from hitlgate.engine.keys.keyring import load_approver_key
    from hitlgate.engine.ledger.store import ListCursor
    from hitlgate.service import console
    from tests.conftest import make_proposal

    result: dict[str, Any] = {}
    decided = []
    for action, target in SHAPES:
        req = engine.propose(make_proposal(action, target, justification=f"bench: {action} on {target}"))
        if req.status == lifecycle.PENDING:
            decided.append(req)
    if not decided:
        raise RuntimeError("the policy left no proposal pending; the benchmark needs approval tiers")
    t0 = time.perf_counter()
    start = datetime.now(UTC) - timedelta(seconds=pending)
    with engine.store.write() as tx:
        for i in range(pending):
            model = decided[i % len(decided)]
            at = start + timedelta(seconds=i)
            tx.insert_request(
                request_id=f"req-bench{i:019d}", status=lifecycle.PENDING, proposal=model.proposal,
                action_digest=model.action_digest, decision=model.decision, created_at=at,
                expires_at=at + timedelta(hours=24), status_reason=model.status_reason,
            )
    result["load_s"] = round(time.perf_counter() - t0, 2)
    # One real approval on the newest dual-approval request: the page re-verifies it.
    dual = next(r for r in decided if r.tier == "dual_approval")
    voted = engine.propose(dual.proposal)
    statement = Statement(voted.id, voted.action_digest, "approve", "alice", datetime.now(UTC))
    engine.approve(sign(statement, load_approver_key(project.keys["alice"])))
    result["pending"] = engine.count(lifecycle.PENDING)
    say(f"console: {result['pending']:,} pending; measuring {rounds} rounds of each page")
    middle = engine.list(lifecycle.PENDING, limit=1, before=None)[0]
    deep = ListCursor(middle.created_at - timedelta(seconds=pending // 2), "req-bench~")
    scenarios: dict[str, tuple[str, Callable[[], Any]]] = {
        "pending_first_page": ("list", lambda: console.render_pending(engine, "bob", {})),
        "pending_by_tier": ("list", lambda: console.render_pending(engine, "bob", {"tier": "dual_approval"})),
        "pending_by_target": ("list", lambda: console.render_pending(engine, "bob", {"target": "svc-ci-runner"})),
        "pending_by_team_none_match": ("list", lambda: console.render_pending(engine, "bob", {"team": "team-nobody"})),
        "pending_deep_page": ("list", lambda: console.render_pending(engine, "bob", {"cursor": deep.encode()})),
        "request_page": ("request", lambda: console.render_request(engine, "bob", voted.id)),
    }
    for _page, fn in scenarios.values():
        response = fn()  # Warm up: templates compiled, caches filled, as on a running server.
        if response.status_code != 200:
            body = bytes(response.body)[:300]
            raise RuntimeError(f"a console page answered {response.status_code}: {body!r}")
    samples: dict[str, list[float]] = {name: [] for name in scenarios}
    cpu: dict[str, list[float]] = {name: [] for name in scenarios}
    for _ in range(rounds):
        for name, (_page, fn) in scenarios.items():
            t, c = time.perf_counter(), time.thread_time()
            fn()
            samples[name].append(time.perf_counter() - t)
            cpu[name].append(time.thread_time() - c)
    for name, values in samples.items():
        # CPU time of the serving thread next to wall time: on a busy machine the wall time mostly
        # measures waiting for a core (on PostgreSQL the database's own CPU is not in it).
        cpu_p = _percentiles(cpu[name])
        result[name] = {"page": scenarios[name][0], **_percentiles(values),
                        "cpu_p50_ms": cpu_p["p50_ms"], "cpu_p99_ms": cpu_p["p99_ms"]}
    return result


def main() -> None:
    """Command line: print the numbers (``--json`` for the raw document)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--pending", type=int, help="pending requests in the store")
    parser.add_argument("--rounds", type=int, help="calls of each page")
    parser.add_argument("--no-postgresql", action="store_true", help="SQLite only")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    mode: dict[str, Any] = {"smoke": args.smoke, "postgresql": not args.no_postgresql}
    if args.pending is not None:
        mode["pending"] = args.pending
    if args.rounds is not None:
        mode["rounds"] = args.rounds
    result = run(mode)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for db in ("sqlite", "postgresql"):
        for name, value in result[db].items():
            if isinstance(value, dict) and "p50_ms" in value:
                print(f"{db:10} {name:28} p50 {value['p50_ms']:7.2f} ms   p99 {value['p99_ms']:7.2f} ms   "
                      f"max {value['max_ms']:7.2f} ms   (CPU p50 {value['cpu_p50_ms']:6.2f}, "
                      f"p99 {value['cpu_p99_ms']:6.2f} ms)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for metric, op, target, text in GOALS:
        measured = result[metric]
        met = measured <= target if op == "<=" else measured >= target
        print(f"goal: {text}: {measured} {op} {target}: {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()

"""Benchmark: the HTTP API (``hitlgate serve``) next to a raw OPA server answering the same decisions.

One run starts, on loopback, an OPA server on the bundle of a fresh project's
pack and ``hitlgate serve`` on the same project (embedded backend, SQLite
state, rate limit off), then drives each with one async httpx client at a
fixed concurrency for a fixed time:

* ``opa raw``: ``POST /v1/data/hitlgate/decision`` with the exact input the
  engine's OPA backend sends (the proposal plus the target's inventory facts);
* ``decide``: ``POST /v1/decisions`` (API key check, strict parse, schema
  validation, the decision contract, metrics);
* ``propose``: ``POST /v1/requests`` (the above plus a stored request and
  its audit events; auto-allow proposals also sign and store a warrant).

Same inputs for all three (every action on every inventory target plus an
unknown one, cycled), checked to decide the same tier on OPA and the service
before anything is timed. The client shares the machine with both servers,
so read the ratio, not the absolute numbers. Issue 10's target: decide
throughput at least 0.5x raw OPA. OPA's server runs a goroutine per request
on every CPU, so by default the service also gets one worker process per
CPU (``--workers``); OPA and decide are measured in interleaved rounds and
the median of the per-round ratios is reported.

    python -m bench.bench_service [--concurrency 16] [--seconds 10] [--workers NCPU] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_backends import inputs, opa_server  # noqa: E402
from hitlgate.engine.decide._bundle import write_bundle  # noqa: E402
from hitlgate.engine.decide._regoscan import inventory_sections_read  # noqa: E402
from hitlgate.engine.decide.backends import with_facts  # noqa: E402
from hitlgate.engine.decide.facts import FactIndex  # noqa: E402
from hitlgate.engine.decide.policy import PolicyPack  # noqa: E402
from tests.service._server import running_server  # noqa: E402

_CLI = [sys.executable, "-c", "from hitlgate.cli import main; main()"]


async def drive(url: str, path: str, bodies: list[Any], headers: dict[str, str], concurrency: int,
                seconds: float, warmup: float) -> dict[str, float]:
    """POST ``bodies`` (cycled) to ``url + path`` from ``concurrency`` workers for ``seconds``; latency and rate."""
    cycle = itertools.cycle(bodies)
    samples: list[float] = []
    errors = 0
    handled = [0]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        measuring = False

        async def worker(stop: float) -> None:
            nonlocal errors
            while time.monotonic() < stop:
                body = next(cycle)
                t0 = time.perf_counter()
                r = await client.post(path, json=body)
                took = time.perf_counter() - t0
                handled[0] += 1
                if r.status_code >= 400:
                    errors += 1
                elif measuring:
                    samples.append(took)

        await asyncio.gather(*(worker(time.monotonic() + warmup) for _ in range(concurrency)))
        measuring = True
        started = time.monotonic()
        await asyncio.gather(*(worker(started + seconds) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    samples.sort()
    return {
        "ops_per_s": round(len(samples) / elapsed, 1),
        "p50_ms": round(statistics.median(samples) * 1000, 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 2),
        "requests": len(samples),
        "all_requests": handled[0],
        "errors": errors,
    }


def _tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of ``root`` and its live descendants (Linux ``/proc``), for CPU per request.

    Throughput on a shared machine swings with whatever else runs; the server CPU spent per answered
    request does not, so it is reported next to the throughput ratio.
    """
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[float, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        stats[pid] = (int(fields[11]) / tick, int(fields[12]) / tick)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += sum(stats.get(pid, (0.0, 0.0)))
        todo.extend(children.get(pid, []))
    return total


def run(concurrency: int, seconds: float, workers: int, warmup: float, rounds: int) -> dict[str, Any]:
    """Start OPA and the service, check they agree, measure the three modes; return the numbers."""
    with tempfile.TemporaryDirectory(prefix="hitlgate-bench-service-") as tmp_name:
        tmp = Path(tmp_name)
        project = tmp / "proj"
        subprocess.run([*_CLI, "init", str(project)], check=True, capture_output=True)
        config = project / "hitlgate.yaml"
        # The inputs are cycled: with the exact decision cache on, every decide after the first round would be a
        # cache hit, so the service decides with it off (each call evaluates, as raw OPA does).
        text = config.read_text().replace("  kind: embedded", "  kind: embedded\n  decision_cache: 0", 1)
        assert "decision_cache: 0" in text, "the init template's backend block changed"
        config.write_text(text + "server:\n  rate_per_second: 0\n")
        made = subprocess.run([*_CLI, "--config", str(config), "--json", "apikey", "create", "bench-agent",
                               "--role", "agent"], check=True, capture_output=True, text=True)
        headers = {"Authorization": f"Bearer {json.loads(made.stdout)['token']}"}
        pack = PolicyPack.load(project / "policies", [project / "policies" / "data"])
        docs = [{k: v for k, v in d.items() if k != "requester"} for d in inputs(pack)]
        index = FactIndex(pack.inventory.document, pack.inventory.revision)
        # The facts the engine sends: only the sections the pack's modules can read.
        sections = inventory_sections_read(source for _, source in pack.modules)
        opa_inputs = [{"input": with_facts({**d, "requester": {"id": "bench-agent", "kind": "agent"}}, index,
                                           sections)[0]}
                      for d in docs]
        bundle = write_bundle(pack, tmp / "bundle.tar.gz")
        serve_pids: list[int] = []
        with opa_server(bundle) as opa_url, \
                running_server(config, log=tmp / "serve.log", workers=workers, pids=serve_pids) as url:
            opa_pid = _listener_pid(int(opa_url.rsplit(":", 1)[1]))
            # Both must decide the same before their speed means anything (one kept-alive connection each).
            with httpx.Client(base_url=url, headers=headers, timeout=30) as ours_client, \
                    httpx.Client(base_url=opa_url, timeout=30) as opa_client:
                for doc, opa_in in zip(docs, opa_inputs, strict=True):
                    ours = ours_client.post("/v1/decisions", json=doc).json()
                    theirs = opa_client.post("/v1/data/hitlgate/decision", json=opa_in).json()
                    assert ours["tier"] == theirs["result"]["tier"], (doc, ours, theirs)
            # Interleaved rounds (the order alternates), so a burst of load from elsewhere on the machine
            # lands on both sides; the ratio is taken per round and its median reported.
            opa_runs: list[dict[str, float]] = []
            decide_runs: list[dict[str, float]] = []
            for i in range(rounds):
                pair = [("opa", opa_url, "/v1/data/hitlgate/decision", opa_inputs, {}),
                        ("decide", url, "/v1/decisions", docs, headers)]
                for name, base, path, bodies, hdrs in (pair if i % 2 == 0 else pair[::-1]):
                    pid = opa_pid if name == "opa" else serve_pids[0]
                    cpu_before = _tree_cpu_s(pid)
                    measured = asyncio.run(drive(base, path, bodies, hdrs, concurrency, seconds, warmup))
                    # Warm-up requests are not counted in ``requests``; their CPU is, so this slightly
                    # overstates both sides alike.
                    spent = _tree_cpu_s(pid) - cpu_before
                    measured["server_cpu_ms_per_op"] = round(1000 * spent / max(1, measured["all_requests"]), 3)
                    (opa_runs if name == "opa" else decide_runs).append(measured)
            results = {
                "opa raw (POST /v1/data)": _median_run(opa_runs),
                "decide (POST /v1/decisions)": _median_run(decide_runs),
                "propose (POST /v1/requests)": asyncio.run(drive(url, "/v1/requests", docs, headers, concurrency,
                                                                 seconds, warmup)),
            }
    ratios = [d["ops_per_s"] / max(1e-9, o["ops_per_s"]) for o, d in zip(opa_runs, decide_runs, strict=True)]
    ratio = statistics.median(ratios)
    cpu = [o["server_cpu_ms_per_op"] / max(1e-9, d["server_cpu_ms_per_op"])
           for o, d in zip(opa_runs, decide_runs, strict=True)]
    return {"concurrency": concurrency, "seconds": seconds, "workers": workers, "rounds": rounds,
            "inputs": len(docs), "results": results, "round_ratios": [round(r, 3) for r in ratios],
            "decide_vs_opa": round(ratio, 3), "target": 0.5, "met": ratio >= 0.5,
            # OPA's server CPU per query over the service's per decision: the throughput ratio a machine
            # whose CPUs go only to the servers would reach (each side's client costs alike).
            "cpu_per_op_opa_over_decide": round(statistics.median(cpu), 3),
            "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}


def _listener_pid(port: int) -> int:
    """The process listening on loopback ``port`` (from /proc/net/tcp and the processes' sockets)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[3] == "0A" and int(parts[1].split(":")[1], 16) == port:
            inode = parts[9]
            break
    if inode is None:
        raise SystemExit(f"nothing listens on port {port}")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return int(entry.name)
            except OSError:
                continue
    raise SystemExit(f"no process holds the socket of port {port}")


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per field, the median over the rounds."""
    return {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}


def main() -> None:
    """Run the benchmark and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per mode")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per mode")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="hitlgate serve --workers (default: one per CPU, as the OPA server uses every CPU)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved OPA/decide rounds (median reported)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    out = run(args.concurrency, args.seconds, args.workers, args.warmup, args.rounds)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"concurrency {out['concurrency']}, {out['seconds']} s per mode and round, {out['rounds']} interleaved "
          f"rounds, serve --workers {out['workers']}, {out['cpus']} CPUs, {out['inputs']} distinct inputs, "
          f"load average {out['load_average']}")
    print(f"{'mode':30} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, r in out["results"].items():
        print(f"{name:30} {r['ops_per_s']:9.1f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['errors']:7d}")
    print(f"server CPU per op: opa {out['results']['opa raw (POST /v1/data)']['server_cpu_ms_per_op']} ms, "
          f"decide {out['results']['decide (POST /v1/decisions)']['server_cpu_ms_per_op']} ms; "
          f"opa / decide = {out['cpu_per_op_opa_over_decide']:.2f}")
    print(f"decide / opa raw = {out['decide_vs_opa']:.2f}, median of rounds {out['round_ratios']} "
          f"(target >= 0.5: {'met' if out['met'] else 'MISSED'})")


if __name__ == "__main__":
    main()

"""Benchmark: embedded regopy vs an OPA server, raw and through the Decider.

Same policy (the bundled pack), same inputs (every action on every
inventory target plus an unknown one, cycled), one thread, sequential:

* ``regopy raw``: ``query_bundle_entrypoint`` on a compiled regopy bundle;
* ``opa http raw``: ``POST /v1/data/hitlgate/decision`` with a keep-alive
  ``requests.Session``;
* ``decide embedded`` / ``decide opa``: ``Decider.decide`` on each backend
  (schema validation of the proposal and the decision included; the OPA
  backend also checks the revision on every answer).

It starts its own OPA server (``scripts/install-opa``) from the bundle on a
free loopback port and stops it afterwards.

    python -m bench.bench_backends [--n 3000] [--warmup 200] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import regopy
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._nocache import uncached  # noqa: E402
from hitlgate.engine import Decider  # noqa: E402
from hitlgate.engine._resources import bundled_data_dir, bundled_policy_dir  # noqa: E402
from hitlgate.engine.decide._bundle import write_bundle  # noqa: E402
from hitlgate.engine.decide._opa import OpaBackend  # noqa: E402
from hitlgate.engine.decide._regopy import RegopyBackend, compile_pack  # noqa: E402
from hitlgate.engine.decide.policy import DECISION_PATH, PolicyPack  # noqa: E402
from hitlgate.engine.decide.schemas import action_types  # noqa: E402

ACTIONS = action_types()


def inputs(pack: PolicyPack) -> list[dict[str, Any]]:
    """Every action on every target (and an unknown one), from an agent."""
    doc = pack.inventory.document
    targets = sorted(doc["identities"]) + sorted(doc["workloads"]) + ["not-in-inventory"]
    return [
        {
            "action": {"type": a, "target": t, "parameters": {}},
            "requester": {"id": "bench-agent", "kind": "agent"},
            "justification": "benchmark",
        }
        for a, t in itertools.product(ACTIONS, targets)
    ]


def measure(
    fn: Callable[[dict[str, Any]], object], docs: list[dict[str, Any]], n: int, warmup: int
) -> dict[str, float]:
    """Latency percentiles (ms) and throughput (ops/s) of ``fn`` over ``n`` calls."""
    cycle = itertools.cycle(docs)
    for _ in range(warmup):
        fn(next(cycle))
    samples = []
    started = time.perf_counter()
    for _ in range(n):
        doc = next(cycle)
        t0 = time.perf_counter_ns()
        fn(doc)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    total = time.perf_counter() - started
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(samples), 3),
        "ops_per_s": round(n / total, 1),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def opa_server(bundle: Path) -> Iterator[str]:
    """Run OPA on the bundle; yield its URL."""
    opa = subprocess.run(
        [str(REPO / "scripts" / "install-opa")], capture_output=True, text=True, check=True
    ).stdout.strip()
    port = _free_port()
    proc = subprocess.Popen(
        [opa, "run", "--server", "--log-level", "error", "--addr", f"127.0.0.1:{port}", "--bundle", str(bundle)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/health?bundles", timeout=0.5).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.05)
        else:
            raise SystemExit("OPA did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    """Run the benchmark and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="measured calls per mode")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls per mode")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()

    pack = PolicyPack.load(bundled_policy_dir(), [bundled_data_dir()])
    docs = inputs(pack)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_bundle(pack, Path(tmp) / "hitlgate.tar.gz")
        with opa_server(bundle) as url:
            interp, compiled = compile_pack(pack)

            def regopy_raw(doc: dict[str, Any]) -> object:
                interp.set_input(regopy.Input(doc))
                return interp.query_bundle_entrypoint(compiled, DECISION_PATH)

            session = requests.Session()

            def opa_raw(doc: dict[str, Any]) -> object:
                r = session.post(f"{url}/v1/data/hitlgate/decision", json={"input": doc}, timeout=5)
                r.raise_for_status()
                return r.json()

            embedded = uncached(Decider(RegopyBackend(pack.policy_dir, list(pack.data_paths))))
            via_opa = Decider(OpaBackend(url, pack=pack, timeout_ms=5000))
            # Both paths must agree before their speed means anything.
            for doc in docs:
                assert embedded.decide(doc).to_dict() == via_opa.decide(doc).to_dict()

            results = {
                "regopy raw (bundle query)": measure(regopy_raw, docs, args.n, args.warmup),
                "opa http raw (POST /v1/data)": measure(opa_raw, docs, args.n, args.warmup),
                "decide embedded (regopy)": measure(embedded.decide, docs, args.n, args.warmup),
                "decide opa (http)": measure(via_opa.decide, docs, args.n, args.warmup),
            }
            embedded.close()
            via_opa.close()
            session.close()

    if args.json:
        print(json.dumps({"n": args.n, "inputs": len(docs), "results": results}, indent=2))
        return
    print(f"{args.n} calls per mode, {len(docs)} distinct inputs, one thread, revision {pack.revision[:19]}...")
    print(f"{'mode':32} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'ops/s':>9}")
    for name, r in results.items():
        print(f"{name:32} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['mean_ms']:8.3f} {r['ops_per_s']:9.1f}")


if __name__ == "__main__":
    main()

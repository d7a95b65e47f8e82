"""Workflow benchmarks (a plain script, not a timed test).

    python -m bench.bench_workflow [--n 300] [--state sqlite|postgres-url]

Measures, in one run, on a fresh SQLite file (WAL, each commit's log synced):

* ``ed25519_verify_floor``: a bare ``cryptography`` Ed25519 verify of a
  warrant-sized message;
* ``warrant_verify``: signature, claims and digest (no store, no consume);
* ``guard_check``: the guard without consumption (verify + store re-check +
  policy re-evaluation with the embedded engine);
* ``guard_execute_consume``: the guard with consumption and outcome
  recording (two write transactions, four audit events' worth of work);
* ``propose_to_grant_auto_allow``: propose (decide + store + audit) and
  fetch the warrant of an auto_allow request;
* ``single_approval_full_path``: propose, sign and submit one approval,
  issue the warrant, execute through the guard.

Prints p50/p99 latency and ops/s for each.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._nocache import uncached
from hitlgate.engine import Config, Decider
from hitlgate.engine.approve.approvals import Statement, sign
from hitlgate.engine.approve.workflow import Engine


def demo_key(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"hitlgate-demo-approver:{name}".encode()).digest())


def proposal(action_type: str, target: str, i: int) -> dict[str, Any]:
    return {
        "action": {"type": action_type, "target": target, "parameters": {"n": i}},
        "requester": {"id": "soc-agent-7", "kind": "agent"},
        "justification": "bench",
    }


def measure(name: str, ops: Iterator[Callable[[], object]], n: int) -> dict[str, float | str]:
    times = []
    for _ in range(n):
        op = next(ops)
        t0 = time.perf_counter()
        op()
        times.append(time.perf_counter() - t0)
    times.sort()
    total = sum(times)
    return {
        "name": name,
        "p50_us": statistics.median(times) * 1e6,
        "p99_us": times[min(len(times) - 1, int(len(times) * 0.99))] * 1e6,
        "ops_per_s": n / total,
    }


def repeat(op: Callable[[], object]) -> Iterator[Callable[[], object]]:
    while True:
        yield op


def measure_all(n: int, state: str | None = None) -> list[dict[str, float | str]]:
    """Every benchmark of the module docstring, ``n`` operations each (20 n for the store-less ones)."""
    with tempfile.TemporaryDirectory() as tmp:
        url = state or f"sqlite:///{Path(tmp) / 'state.db'}"
        config = Config(state_url=url, key_dir=Path(tmp) / "keys")
        # Demo mode: the benchmark signs with the example inventory's demo keys.
        engine = Engine(config, uncached(Decider.from_config(config)), checkpoint_every=100, demo=True)
        guard = engine.guard()
        results = []

        key = Ed25519PrivateKey.generate()
        msg = b"x" * 700
        sig = key.sign(msg)
        pub = key.public_key()
        results.append(measure("ed25519_verify_floor", repeat(lambda: pub.verify(sig, msg)), 20 * n))

        doc = proposal("rotate_api_key", "dev-analytics-key", -1)
        req = engine.propose(doc)
        token = engine.warrant(req.id).token
        digest = req.action_digest
        results.append(measure(
            "warrant_verify", repeat(lambda: engine.verifier.verify(token, action_digest=digest)), 20 * n
        ))
        results.append(measure("guard_check", repeat(lambda: guard.check(token, doc["action"])), n))

        # Fresh warrants for the consuming benchmark, prepared outside the timing.
        prepared = []
        for i in range(n):
            d = proposal("rotate_api_key", "dev-analytics-key", i)
            r = engine.propose(d)
            prepared.append((engine.warrant(r.id).token, d["action"]))

        def consume_ops() -> Iterator[Callable[[], object]]:
            for tok, action in prepared:
                yield lambda tok=tok, action=action: guard.execute(tok, action, lambda a: None)

        results.append(measure("guard_execute_consume", consume_ops(), n))

        counter = iter(range(10**9))

        def auto() -> None:
            r = engine.propose(proposal("rotate_api_key", "dev-analytics-key", next(counter)))
            engine.warrant(r.id)

        results.append(measure("propose_to_grant_auto_allow", repeat(auto), n))

        carol = demo_key("carol")

        def full() -> None:
            d = proposal("suspend_service_account", "svc-ci-runner", next(counter))
            r = engine.propose(d)
            engine.approve(sign(Statement(r.id, r.action_digest, "approve", "carol", engine.now()), carol))
            w = engine.warrant(r.id)
            guard.execute(w.token, d["action"], lambda a: None)

        results.append(measure("single_approval_full_path", repeat(full), n))
        engine.verify_audit()
        engine.close()
    return results


def run(mode: Any = "full", *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """For ``python -m bench``: "smoke" (a few operations) or "full" (300); returns the numbers."""
    n = 5 if mode == "smoke" else 300
    if log:
        log(f"workflow: {n} operations per store-backed benchmark on SQLite")
    out: dict[str, Any] = {}
    for r in measure_all(n):
        for key in ("p50_us", "p99_us", "ops_per_s"):
            out[f"{r['name']}_{key}"] = float(r[key])
    return out


def main() -> None:
    """Run the benchmarks and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="operations per store-backed benchmark")
    ap.add_argument("--state", help="state URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    results = measure_all(args.n, args.state)
    floor = results[0]["ops_per_s"]
    print(f"state: {'sqlite (WAL, each commit synced)' if not args.state else args.state.split('://')[0]}")
    print(f"{'benchmark':<30} {'p50 (us)':>10} {'p99 (us)':>10} {'ops/s':>10} {'x floor':>8}")
    for r in results:
        ratio = float(r["ops_per_s"]) / float(floor)
        print(f"{r['name']:<30} {r['p50_us']:>10.1f} {r['p99_us']:>10.1f} {r['ops_per_s']:>10.0f} {ratio:>8.2f}")


if __name__ == "__main__":
    main()

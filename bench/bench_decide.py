"""Benchmark: raw regopy bundle query vs full ``Decider.decide``.

Same policy, same 1,000 proposals, one run. ``raw`` is the floor: set the
input and query the compiled bundle entrypoint, nothing else. ``decide`` is
what a caller pays: JSON Schema validation of the proposal, the reload
check, evaluation, and validation of the decision document.

    python -m bench.bench_decide [--n 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import yaml

from hitlgate.engine import Config, Decider
from hitlgate.engine._resources import bundled_data_dir
from hitlgate.engine.decide._regopy import compile_pack, evaluate_input
from hitlgate.engine.decide._regoscan import inventory_sections_read
from hitlgate.engine.decide.backends import with_facts
from hitlgate.engine.decide.facts import FactIndex
from hitlgate.engine.decide.policy import PolicyPack
from hitlgate.engine.decide.schemas import action_types
from hitlgate.service.collector import settle_for_serving

ACTIONS = action_types()



def proposals(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """n proposals over the example inventory's targets (plus a few unknown ones)."""
    inv = yaml.safe_load((bundled_data_dir() / "inventory.yaml").read_text())
    targets = sorted(inv["identities"]) + sorted(inv["workloads"]) + ["ghost-1", "ghost-2"]
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        out.append({
            "action": {"type": rnd.choice(ACTIONS), "target": rnd.choice(targets), "parameters": {"n": i}},
            "requester": {"id": f"agent-{i % 5}", "kind": rnd.choice(["agent", "human", "service"])},
            "justification": "benchmark",
            "incident": f"INC-{i}",
            "confidence": 0.5,
        })
    return out


def measure(fn: Callable[[dict[str, Any]], Any], inputs: list[dict[str, Any]]) -> list[float]:
    """Per-call latency in microseconds."""
    samples = []
    # The collector stays on (main settles it as `hitlgate serve` does): its collections are in the p99.
    for doc in inputs:
        t0 = time.perf_counter_ns()
        fn(doc)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples


def pct(samples: list[float], q: float) -> float:
    """Percentile q (0..100) of samples."""
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def main() -> None:
    """Run the benchmark and print a table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best p50 round is kept")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    config = Config()
    pack = PolicyPack.load(config.policy_dir, list(config.data_paths))
    interp, bundle = compile_pack(pack)
    index = FactIndex(pack.inventory.document, pack.inventory.revision)
    # The sections of the neighbourhood the pack may read: what the engine passes.
    sections = inventory_sections_read(source for _, source in pack.modules)

    def raw(doc: dict[str, Any]) -> Any:
        # The input the engine evaluates: the proposal plus the target's facts.
        # The engine's own query (set the input, evaluate, read the output), nothing around it.
        return evaluate_input(interp, bundle, with_facts(doc, index, sections)[0])

    decider = Decider.from_config(config)
    # The decide row measures evaluation: the exact decision cache would answer every round after the first.
    decider.backend.decision_cache.resize(0)  # type: ignore[attr-defined]
    inputs = proposals(args.n)
    # Sanity: both paths agree on every input before anything is timed.
    for doc in inputs:
        assert raw(doc)["tier"] == decider.decide(doc).tier
    for doc in inputs[:200]:  # Warm-up.
        raw(doc)
        decider.decide(doc)

    settle_for_serving()
    results: dict[str, list[float]] = {}
    best: dict[str, tuple[float, list[float]]] = {}
    for _ in range(args.rounds):
        for name, fn in (("raw regopy query", raw), ("decide (validate+enrich+eval)", decider.decide)):
            s = measure(fn, inputs)
            p50 = statistics.median(s)
            if name not in best or p50 < best[name][0]:
                best[name] = (p50, s)
    for name, (_, s) in best.items():
        results[name] = s

    rows = []
    for name, s in results.items():
        rows.append({
            "path": name,
            "n": len(s),
            "p50_us": round(pct(s, 50), 1),
            "p99_us": round(pct(s, 99), 1),
            "mean_us": round(statistics.fmean(s), 1),
            "ops_per_s": round(1e6 / statistics.fmean(s)),
        })
    raw_row, dec_row = rows
    ratio_p50 = dec_row["p50_us"] / raw_row["p50_us"]
    ratio_p99 = dec_row["p99_us"] / raw_row["p99_us"]
    if args.json:
        print(json.dumps({"rows": rows, "decide_over_raw_p50": ratio_p50, "decide_over_raw_p99": ratio_p99}, indent=2))
        return
    print(f"{'path':32} {'n':>6} {'p50 µs':>9} {'p99 µs':>9} {'mean µs':>9} {'ops/s':>8}")
    for r in rows:
        print(f"{r['path']:32} {r['n']:>6} {r['p50_us']:>9} {r['p99_us']:>9} {r['mean_us']:>9} {r['ops_per_s']:>8}")
    print(f"decide / raw: p50 {ratio_p50:.2f}x, p99 {ratio_p99:.2f}x  (target <= 1.5x; decide p99 target <= 1000 µs)")


if __name__ == "__main__":
    main()

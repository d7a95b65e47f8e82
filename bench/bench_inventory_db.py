"""The inventory in the database at size: import, start to first decision, memory, put to visible.

    python -m bench.bench_inventory_db --size 100000 [--url postgresql+psycopg://...] [--workdir DIR]

1. Generates a seeded inventory of ``--size`` identities (JSON Lines above 10,000, else YAML)
   (:mod:`bench.gen_inventory`) and times ``hitlgate inventory import`` of it
   (the engine call: load and validate the file, then write it in one
   transaction), then each half of a re-import of the same file (nothing
   changes): validating, and comparing with what is stored.
2. In a fresh process configured with ``inventory: {source: database}``:
   the wall time from process start to the first decision, and the peak RSS
   after 200 decisions.
3. Put to visible: a writer changes one identity (``protected`` on and off)
   and a decider polling as the engine does measures when its next decision
   sees the change; median and max over ``--puts`` changes.

Prints one JSON document. Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.gen_inventory import Spec, write_inventory

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    start = time.monotonic()
    from bench._nocache import uncached
    from hitlgate.engine import Config, Decider
    config = Config(state_url=sys.argv[1], key_dir=__import__("pathlib").Path(sys.argv[2]),
                    inventory_source="database")
    decider = uncached(Decider.from_config(config))
    doc = {"action": {"type": "rotate_api_key", "target": sys.argv[3], "parameters": {}},
           "requester": {"id": "bench", "kind": "agent"}, "justification": "bench"}
    first = decider.decide(doc)
    first_at = time.monotonic() - start
    # CPU seconds since the process started (interpreter start-up included): the load-independent cost.
    first_cpu = time.process_time()
    for _ in range(200):
        decider.decide(doc)
    # VmHWM, not ru_maxrss: Linux carries the parent's peak into a forked child's ru_maxrss.
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    mb = lambda key: round(int(status[key].split()[0]) / 1024, 1)
    print(json.dumps({"start_to_first_decision_s": round(first_at, 3),
                      "start_to_first_decision_cpu_s": round(first_cpu, 3), "tier": first.tier,
                      "fail_closed": first.fail_closed, "rss_mb": mb("VmRSS"), "peak_rss_mb": mb("VmHWM")}))
    """
)


def measure(size: int, url: str | None, workdir: Path, puts: int) -> dict[str, Any]:
    """Run the three measurements; see the module docstring."""
    from bench._nocache import uncached
    from hitlgate.engine import Config, Decider
    from hitlgate.engine.decide.inventory import load_inventory
    from hitlgate.engine.decide.inventory_db import InventoryDB

    spec = Spec(size=size, seed=1)
    t = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    path = write_inventory(spec, workdir / "inv", "auto")  # YAML up to 10,000 identities, JSON Lines above
    out: dict[str, Any] = {"size": size, "generate_s": round(time.perf_counter() - t, 2)}
    url = url or f"sqlite:///{workdir / 'state.db'}"
    db = InventoryDB.open(url)
    out["database"] = db.store.dialect
    t, cpu = time.perf_counter(), time.process_time()
    result = db.import_files([path])
    out["import_s"] = round(time.perf_counter() - t, 2)
    out["import_cpu_s"] = round(time.process_time() - cpu, 2)
    out["records"] = result.added
    # The two halves of an import: reading and validating the file, writing the rows.
    t = time.perf_counter()
    document = load_inventory([path]).document
    out["import_validate_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    db.import_document(document)
    del document
    out["import_write_unchanged_s"] = round(time.perf_counter() - t, 2)

    target = spec.identity_id(0)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, url, str(workdir / "keys"), target],
        capture_output=True, text=True, timeout=600, check=True,
    )
    out.update(json.loads(child.stdout.strip().splitlines()[-1]))

    config = Config(state_url=url, key_dir=workdir / "keys", inventory_source="database")
    decider = uncached(Decider.from_config(config))
    doc = {"action": {"type": "rotate_api_key", "target": target, "parameters": {}},
           "requester": {"id": "bench", "kind": "agent"}, "justification": "bench"}
    decider.decide(doc)
    delays: list[float] = []
    protected = False
    for _ in range(puts):
        protected = not protected
        if protected:
            db.put("protected", target, True)
        else:
            db.delete("protected", target)
        written = time.monotonic()
        while ("protected_target" in decider.decide(doc).risk_factors) != protected:
            time.sleep(0.005)
            if time.monotonic() - written > 5:
                raise RuntimeError("a change did not reach the decider within 5 s")
        delays.append(time.monotonic() - written)
    out["put_to_visible_s"] = {"median": round(statistics.median(delays), 3), "max": round(max(delays), 3),
                               "n": len(delays)}
    decider.close()
    db.close()
    return out


#: Issue 9's goals this benchmark measures: (metric, op, target, description), for ``python -m bench``.
GOALS = [
    ("sqlite_start_to_first_decision_s", "<=", 5.0, "start to first decision, database inventory (SQLite), s"),
    ("sqlite_rss_mb", "<=", 300.0, "RSS after 200 decisions, database inventory (SQLite), MB"),
    ("sqlite_put_to_visible_max_s", "<=", 1.0, "one put visible to the next decision (SQLite), worst, s"),
    ("postgresql_start_to_first_decision_s", "<=", 5.0, "start to first decision, database inventory (PostgreSQL), s"),
    ("postgresql_rss_mb", "<=", 300.0, "RSS after 200 decisions, database inventory (PostgreSQL), MB"),
    ("postgresql_put_to_visible_max_s", "<=", 1.0, "one put visible to the next decision (PostgreSQL), worst, s"),
]


def run(mode: Any = "full", *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """For ``python -m bench``: "smoke" (1,000 identities, SQLite) or "full" (100,000, SQLite and PostgreSQL)."""
    smoke = mode == "smoke"
    size, puts = (1000, 3) if smoke else (100_000, 10)
    out: dict[str, Any] = {"size": size}
    with tempfile.TemporaryDirectory(prefix="hitlgate-invdb-") as tmp:
        if log:
            log(f"inventory_db: {size} identities, SQLite")
        _flatten(out, "sqlite", measure(size, None, Path(tmp) / "sqlite", puts))
        if smoke:
            return out
        from tests._pgcluster import pg_bindir, running_cluster

        bindir = pg_bindir()
        if bindir is None:
            out["postgresql"] = "not measured: PostgreSQL is not installed"
            return out
        if log:
            log(f"inventory_db: {size} identities, PostgreSQL")
        with running_cluster(bindir) as cluster:
            _flatten(out, "postgresql", measure(size, cluster.new_database(), Path(tmp) / "pg", puts))
    return out


def _flatten(out: dict[str, Any], prefix: str, result: dict[str, Any]) -> None:
    for key, value in result.items():
        if key == "put_to_visible_s":
            out[f"{prefix}_put_to_visible_median_s"] = value["median"]
            out[f"{prefix}_put_to_visible_max_s"] = value["max"]
        elif key != "size":
            out[f"{prefix}_{key}"] = value


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--url", help="database URL (default: a SQLite file in the work directory)")
    parser.add_argument("--workdir", type=Path, help="where to write the inventory and the database")
    parser.add_argument("--puts", type=int, default=10)
    args = parser.parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        print(json.dumps(measure(args.size, args.url, args.workdir, args.puts), indent=2))
        return
    with tempfile.TemporaryDirectory(prefix="hitlgate-invdb-") as tmp:
        print(json.dumps(measure(args.size, args.url, Path(tmp), args.puts), indent=2))


if __name__ == "__main__":
    main()

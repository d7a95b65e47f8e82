"""``python -m bench``: run every benchmark and write docs/benchmarks.md.

    python -m bench                      # everything, full sizes (about an hour; run it niced on a quiet machine)
    python -m bench --smoke              # tiny sizes, 1-2 minutes (CI runs this); builds OPA first if missing
    python -m bench --only scaling --sizes 100,10000
    python -m bench --only service       # the HTTP API next to a raw OPA server
    python -m bench --smoke --out /tmp/b.md --json /tmp/b.json

Each benchmark is a module ``bench/bench_<name>.py`` with ``run(mode, log=...)
-> dict`` (``mode`` is "smoke" or "full"; the scaling benchmark also takes
sizes). The older scripts ``bench_decide``, ``bench_backends`` and
``bench_service`` are run as subprocesses with ``--json``. A module that is
not there yet is listed as missing; a module that fails is reported with its
error and makes the command exit 1, after the report is written.

Several benchmarks compare with a real OPA server. When no OPA is found
($HITLGATE_OPA, or the cache of `hitlgate opa install`), it is built first
with `go install`, saying so: 2-5 minutes on an idle machine, much longer
on a busy one, and only once.

The report holds the machine (CPU, cores, RAM, load average at the start),
the versions (Python, regopy, OPA, PostgreSQL, SQLite, the hitlgate
commit), the date, each benchmark's numbers, every comparison as a ratio
next to both absolute numbers, and each performance goal next to its
measured value (met / missed). The goals:

  decide p50 <= 1 ms and p99 <= 2 ms (embedded engine), at every inventory size;
  the OPA backend's decide p50 <= 1.5x a raw query to the same OPA server;
  at 100,000 identities: process start to first decision <= 5 s, RSS after
  init <= 300 MB, <= 5 MB more per deciding thread, one changed identity
  visible to the next decision within 1 s;
  a complete single-approval flow (propose, approve, warrant, verify and
  consume) <= 15 ms of CPU, and >= 100 flows/s on SQLite and >= 200 flows/s
  on PostgreSQL with 8 concurrent clients;
  the HTTP API's decide throughput >= 0.5x a raw OPA server's (bench_service);
  `hitlgate policy check --base` on 1,000 identities with a 10,000-line replay
  in under a minute (bench_policy_check);
  the approvers' console's pending list and request page in under 100 ms of
  server time with 10,000 pending requests (bench_console).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "benchmarks.md"

#: Every benchmark, in report order.
BENCHES = ("scaling", "decide", "backends", "warrants", "workflow", "flows", "store", "inventory_db", "service",
           "policy_check", "console")
#: The older scripts that print JSON with these arguments (full, smoke).
SCRIPTS = {
    "decide": (["--json", "--n", "1000", "--rounds", "3"], ["--json", "--n", "30", "--rounds", "1"]),
    "backends": (["--json", "--n", "3000", "--warmup", "200"], ["--json", "--n", "30", "--warmup", "5"]),
    "service": (["--json"], ["--json", "--seconds", "1", "--warmup", "0.5", "--concurrency", "4", "--rounds", "1",
                             "--workers", "1"]),
}

#: The "before" table of issue 9 (measured on this machine before the work), quoted for comparison.
BEFORE = [
    ("100", "0.15 s", "80 MB", "1.8 ms / 5 ms", "1.9 ms / 5.5 ms"),
    ("1,000", "1.3–1.7 s", "122 MB", "4.7–6.1 ms / 35–47 ms", "5.8–6.5 ms / 44–49 ms"),
    ("10,000", "17–22 s", "560 MB (+190 MB per extra thread)", "41–74 ms / 0.37–0.82 s", "33–110 ms / 0.31–1.1 s"),
    ("100,000", "did not finish a run in 20 minutes", "", "", ""),
]

Goal = tuple[str, str, str, float, str]  # (benchmark, metric, op, target, description)

#: Issue 9's goals for the benchmarks other than scaling (whose goals are per size, below).
GOALS: list[Goal] = [
    ("flows", "cpu_ms_per_flow_sqlite", "<=", 15.0,
     "full single-approval path CPU (SQLite; default config, decision cache on), ms"),
    ("flows", "cpu_ms_per_flow_postgresql", "<=", 15.0,
     "full single-approval path CPU (PostgreSQL; default config, decision cache on), ms"),
    ("flows", "flows_per_s_postgresql", ">=", 200.0, "complete flows/s, 8 concurrent clients, PostgreSQL"),
    ("flows", "flows_per_s_sqlite", ">=", 100.0, "complete flows/s, 8 concurrent clients, SQLite"),
    ("service", "decide_vs_opa", ">=", 0.5, "HTTP API decide throughput / raw OPA server's"),
]


# ---------------------------------------------------------------------------
# Machine and versions.
# ---------------------------------------------------------------------------


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM and the load average now."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = int(line.split()[1]) / 1024 / 1024
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "ram_gb": round(ram_gb, 1),
        "load_average": [round(x, 2) for x in load],
        "os": f"{platform.system()} {platform.release()}",
    }


def versions() -> dict[str, str]:
    """Versions of everything measured."""
    out = {"python": platform.python_version()}
    for dist in ("regopy", "SQLAlchemy", "psycopg", "cryptography", "PyYAML"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["sqlite"] = sqlite3.sqlite_version
    from bench.bench_scaling import find_opa

    opa = find_opa()
    version = _run([str(opa), "version"]).splitlines() if opa else []
    out["opa"] = next((ln.split(":", 1)[1].strip() for ln in version if ln.startswith("Version:")), "not installed")
    postgres = shutil.which("postgres")
    if postgres is None:
        with contextlib.suppress(Exception):
            from tests._pgcluster import pg_bindir

            bindir = pg_bindir()
            postgres = str(bindir / "postgres") if bindir else None
    pg_version = _run([postgres, "--version"]) if postgres else ""
    out["postgresql"] = pg_version.removeprefix("postgres (PostgreSQL) ") or "not found"
    commit = _run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"]) or "unknown"
    # The report's own files do not count: a run with --keep rewrites them before the next one starts.
    dirty = _run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--", ".",
                  ":(exclude)docs/benchmarks.md", ":(exclude)docs/benchmarks.json"])
    out["hitlgate"] = commit + (" (with uncommitted changes)" if dirty else "")
    return out


# ---------------------------------------------------------------------------
# Running the benchmarks.
# ---------------------------------------------------------------------------


def ensure_opa(log: Callable[[str], None]) -> None:
    """Build the pinned OPA when none is found, saying so first: the build takes minutes, not a silent pause."""
    from bench.bench_scaling import find_opa

    if find_opa() is not None:
        return
    from hitlgate.engine.decide._opabin import OPA_VERSION, OpaInstallError, install

    log(f"OPA is not installed: building OPA {OPA_VERSION} with `go install` (hitlgate opa install) before the "
        "benchmarks that compare with it; 2-5 minutes on an idle machine, longer on a busy one, once")
    try:
        path = install(say=lambda line: log(f"opa install: {line}"))
    except OpaInstallError as exc:
        log(f"OPA could not be built ({exc}); the benchmarks that need it will fail")
        return
    os.environ["HITLGATE_OPA"] = str(path)
    log(f"OPA is at {path}")


def run_script(name: str, smoke: bool) -> dict[str, Any]:
    """Run an older ``bench_<name>.py`` script with ``--json`` and return what it printed."""
    args = SCRIPTS[name][1 if smoke else 0]
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / f"bench_{name}.py"), *args],
        capture_output=True, text=True, cwd=REPO, timeout=3600, check=False,
    )
    if proc.returncode:
        raise RuntimeError(f"bench_{name}.py exited {proc.returncode}: {proc.stderr.strip()[-1500:]}")
    return dict(json.loads(proc.stdout))


def run_one(
    name: str, smoke: bool, sizes: list[int] | None, log: Callable[[str], None], workdir: Path | None = None
) -> dict[str, Any]:
    """Run benchmark ``name``; its result, or ``{"missing": ...}`` / ``{"error": ...}``."""
    t0 = time.perf_counter()
    try:
        if name in SCRIPTS:
            result = run_script(name, smoke)
        else:
            try:
                module = importlib.import_module(f"bench.bench_{name}")
            except ModuleNotFoundError as exc:
                if exc.name == f"bench.bench_{name}":
                    return {"missing": f"bench/bench_{name}.py is not there (yet)"}
                raise
            if not hasattr(module, "run"):
                return {"missing": f"bench/bench_{name}.py has no run(mode, log=...) yet"}
            mode: Any = "smoke" if smoke else "full"
            if name == "scaling" and (sizes or workdir):
                mode = {"smoke": smoke, "sizes": sizes, "workdir": str(workdir) if workdir else None}
            result = dict(module.run(mode, log=log))
            module_goals = getattr(module, "GOALS", None)
            if module_goals:
                result.setdefault("_goals", [list(g) for g in module_goals])
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others' numbers.
        log(f"{name}: FAILED: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    result["_seconds"] = time.perf_counter() - t0
    return result


# ---------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------


def fmt_ms(v: Any) -> str:
    """Milliseconds, readable at any magnitude."""
    if not isinstance(v, int | float):
        return "–"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 10:
        return f"{v:.0f} ms"
    if v >= 1:
        return f"{v:.2f} ms"
    return f"{v * 1000:.0f} µs"


def fmt_num(v: Any) -> str:
    """A number with a sensible number of digits."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def ratio(a: Any, b: Any) -> str:
    """``a / b`` as ``1.23×``, or a dash."""
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return f"{a / b:.2f}×"
    return "–"


def _check(value: Any, op: str, target: float) -> str:
    if not isinstance(value, int | float):
        return "not measured"
    met = value <= target if op == "<=" else value >= target
    return "**met**" if met else "**missed**"


def scaling_goals(scaling: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(goal, target, measured, met/missed) rows for issue 9's per-size goals."""
    rows: list[tuple[str, str, str, str]] = []
    sizes = scaling.get("sizes", {})
    for size, r in sizes.items():
        n = f"{int(size):,}"
        p50, p99 = r.get("decide_embedded_p50_ms"), r.get("decide_embedded_p99_ms")
        rows.append((f"decide p50, {n} identities (embedded)", "≤ 1 ms", fmt_ms(p50), _check(p50, "<=", 1.0)))
        rows.append((f"decide p99, {n} identities (embedded)", "≤ 2 ms", fmt_ms(p99), _check(p99, "<=", 2.0)))
        o, raw = r.get("decide_opa_p50_ms"), r.get("raw_opa_p50_ms")
        rel = o / raw if isinstance(o, int | float) and isinstance(raw, int | float) and raw else None
        rows.append((
            f"OPA backend decide p50 vs raw OPA query, {n} identities", "≤ 1.5×",
            f"{ratio(o, raw)} ({fmt_ms(o)} vs {fmt_ms(raw)})", _check(rel, "<=", 1.5),
        ))
    big = sizes.get("100000")
    if big is not None:
        s = big.get("start_to_first_decision_s")
        rows.append(("process start to first decision, 100,000 identities", "≤ 5 s",
                     fmt_ms(s * 1000) if isinstance(s, int | float) else big.get("start_error", "–"),
                     _check(s, "<=", 5.0)))
        m = big.get("start_rss_mb")
        rows.append(("RSS after init, 100,000 identities", "≤ 300 MB",
                     f"{m:.0f} MB" if isinstance(m, int | float) else "–", _check(m, "<=", 300.0)))
        t = big.get("thread_extra_rss_mb")
        rows.append(("extra RSS per deciding thread, 100,000 identities", "a few MB (≤ 5 MB)",
                     f"{t:.1f} MB" if isinstance(t, int | float) else "–", _check(t, "<=", 5.0)))
        c = big.get("change_visible_s")
        rows.append(("one changed identity visible to the next decision, 100,000 identities", "≤ 1 s",
                     fmt_ms(c * 1000) if isinstance(c, int | float) else "–", _check(c, "<=", 1.0)))
    return rows


def other_goals(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(goal, target, measured, met/missed) rows for the flow and store goals."""
    rows = []
    goals: list[Goal] = list(GOALS)
    for name, result in results.items():
        for g in result.get("_goals", []):
            metric, op, target, description = g
            if not any(x[0] == name and x[1] == metric for x in goals):
                goals.append((name, metric, op, float(target), description))
    for name, metric, op, target, description in goals:
        result = results.get(name)
        if result is None:
            continue
        value = result.get(metric)
        measured = fmt_num(value) if value is not None else ("not run" if "missing" in result else "not measured")
        sign = {"<=": "≤", ">=": "≥"}.get(op, op)
        rows.append((f"{description} ({name}.{metric})", f"{sign} {fmt_num(target)}", measured,
                     _check(value, op, target)))
    return rows


def scaling_section(scaling: dict[str, Any]) -> list[str]:
    """The scaling tables (absolute numbers, then ratios)."""
    out = ["## Scaling with inventory size", ""]
    opts = scaling.get("options", {})
    out.append(
        f"Generated inventories (`bench/gen_inventory.py`, seed {opts.get('seed', 1)}; per 100 identities ~30 "
        "workloads, 5 teams, 1.5 partners, 2 approvers per team). Start: a fresh process imports hitlgate, builds "
        f"the decider and decides once (median of up to {opts.get('start_rounds')} processes). Latencies: median "
        f"over {opts.get('rounds')} interleaved rounds of each round's p50 / p99; up to {opts.get('n')} calls per "
        "mode and round, one thread. Raw modes evaluate exactly the input the engine evaluates."
    )
    out.append("")
    out.append("| identities | format | start → first decision | RSS after init | raw regopy p50 / p99 | "
               "decide (embedded) p50 / p99 | decide (OPA backend) p50 / p99 | raw OPA query p50 / p99 | "
               "extra RSS per thread | thread's first decide | one change visible |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for size, r in scaling.get("sizes", {}).items():
        def pair(mode: str, r: dict[str, Any] = r) -> str:
            return f"{fmt_ms(r.get(f'{mode}_p50_ms'))} / {fmt_ms(r.get(f'{mode}_p99_ms'))}"

        start = r.get("start_to_first_decision_s")
        rss = r.get("start_rss_mb")
        thr = r.get("thread_extra_rss_mb")
        change = r.get("change_visible_s")
        out.append(
            f"| {int(size):,} | {r.get('format')} | "
            f"{fmt_ms(start * 1000) if isinstance(start, int | float) else '–'} | "
            f"{f'{rss:.0f} MB' if isinstance(rss, int | float) else '–'} | "
            f"{pair('raw_regopy')} | {pair('decide_embedded')} | {pair('decide_opa')} | {pair('raw_opa')} | "
            f"{f'{thr:.1f} MB' if isinstance(thr, int | float) else '–'} | "
            f"{fmt_ms(r.get('thread_first_decide_ms'))} | "
            f"{fmt_ms(change * 1000) if isinstance(change, int | float) else '–'} |"
        )
    out += ["", "Ratios (p50, and p99 in brackets):", ""]
    out.append("| identities | decide / raw regopy | OPA backend / raw OPA | embedded decide / OPA backend decide | "
               "OPA server RSS | inventory on disk | load split (import / init / first decide) |")
    out.append("|---|---|---|---|---|---|---|")
    for size, r in scaling.get("sizes", {}).items():
        def rr(a: str, b: str, r: dict[str, Any] = r) -> str:
            return (f"{ratio(r.get(f'{a}_p50_ms'), r.get(f'{b}_p50_ms'))} "
                    f"({ratio(r.get(f'{a}_p99_ms'), r.get(f'{b}_p99_ms'))})")

        opa_rss = r.get("opa_rss_after_mb")
        split = " / ".join(
            fmt_ms(r[k] * 1000) if isinstance(r.get(k), int | float) else "–"
            for k in ("start_import_s", "start_init_s", "start_first_decide_s")
        )
        out.append(
            f"| {int(size):,} | {rr('decide_embedded', 'raw_regopy')} | {rr('decide_opa', 'raw_opa')} | "
            f"{rr('decide_embedded', 'decide_opa')} | "
            f"{f'{opa_rss:.0f} MB' if isinstance(opa_rss, int | float) else '–'} | "
            f"{fmt_num(r.get('inventory_mb', 0))} MB | {split} |"
        )
    out += ["", "The decide rows and goals above evaluate every call (the exact decision cache is off for them). "
            "For comparison, the same 50 proposals repeated, every call answered by the cache "
            "(same input, modules and inventory revision):", ""]
    out.append("| identities | decide (embedded, cached) p50 / p99 | cached / uncached decide, p50 |")
    out.append("|---|---|---|")
    for size, r in scaling.get("sizes", {}).items():
        out.append(
            f"| {int(size):,} | {fmt_ms(r.get('decide_embedded_cached_p50_ms'))} / "
            f"{fmt_ms(r.get('decide_embedded_cached_p99_ms'))} | "
            f"{ratio(r.get('decide_embedded_cached_p50_ms'), r.get('decide_embedded_p50_ms'))} |"
        )
    problems = [
        f"- {int(size):,}: {r[k]}" for size, r in scaling.get("sizes", {}).items()
        for k in ("start_error", "error") if r.get(k)
    ]
    notes = [f"- {n}" for n in scaling.get("notes", [])]
    notes += [f"- {int(size):,}: {n}" for size, r in scaling.get("sizes", {}).items() for n in r.get("notes", [])]
    if problems:
        out += ["", "Did not complete:", "", *problems]
    if notes:
        out += ["", "Notes:", "", *notes]
    out.append("")
    return out


def _comparisons(name: str, r: dict[str, Any]) -> list[tuple[str, Any, Any, str]]:
    """(what, a, b, unit) pairs worth a ratio, per benchmark."""
    pairs: list[tuple[str, Any, Any, str]] = []
    if name == "decide":
        rows = {row["path"]: row for row in r.get("rows", [])}
        raw = rows.get("raw regopy query", {})
        dec = next((v for k, v in rows.items() if k.startswith("decide")), {})
        pairs.append(("decide / raw regopy query, p50", dec.get("p50_us"), raw.get("p50_us"), "µs"))
        pairs.append(("decide / raw regopy query, p99", dec.get("p99_us"), raw.get("p99_us"), "µs"))
    elif name == "backends":
        res = r.get("results", {})
        get = lambda prefix, k: next((v.get(k) for m, v in res.items() if m.startswith(prefix)), None)  # noqa: E731
        for k in ("p50_ms", "p99_ms"):
            pairs.append((f"decide OPA / raw OPA, {k[:3]}", get("decide opa", k), get("opa http raw", k), "ms"))
            pairs.append((f"decide embedded / raw regopy, {k[:3]}", get("decide embedded", k),
                          get("regopy raw", k), "ms"))
            pairs.append((f"decide embedded / decide OPA, {k[:3]}", get("decide embedded", k), get("decide opa", k),
                          "ms"))
    elif name == "warrants":
        floor = r.get("ed25519_verify_floor_ops_per_s")
        for k in ("warrant_verify", "warrant_verify_keyring", "pyjwt_decode_reference", "warrant_issue"):
            pairs.append((f"{k} / bare Ed25519 verify, ops/s", r.get(f"{k}_ops_per_s"), floor, "ops/s"))
    elif name == "workflow":
        for k in ("guard_check", "guard_execute_consume", "single_approval_full_path"):
            pairs.append((f"{k} / warrant_verify, p50", r.get(f"{k}_p50_us"), r.get("warrant_verify_p50_us"), "µs"))
    elif name == "flows":
        for k, unit in (("cpu_ms_per_flow", "ms"), ("wall_ms_per_flow", "ms"), ("flows_per_s", "flows/s")):
            pairs.append((f"{k}: PostgreSQL / SQLite", r.get(f"{k}_postgresql"), r.get(f"{k}_sqlite"), unit))
        for db in ("sqlite", "postgresql"):
            pairs.append((f"cpu_ms_per_flow_{db}: decision cache on (default) / off", r.get(f"cpu_ms_per_flow_{db}"),
                          r.get(f"cpu_ms_per_flow_{db}_nocache"), "ms"))
        for db in ("sqlite", "postgresql"):
            pairs.append((f"flows_per_s_{db} / this machine's CPU ceiling", r.get(f"flows_per_s_{db}"),
                          r.get(f"cpu_ceiling_flows_per_s_{db}"), "flows/s"))
    return [p for p in pairs if isinstance(p[1], int | float) and isinstance(p[2], int | float)]


def _flat(prefix: str, value: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            label = v.get("path") or v.get("name") or str(i)
            _flat(f"{prefix}[{label}]", {k: x for k, x in v.items() if k not in ("path", "name")}, out)
    else:
        out.append((prefix, value))


#: What a section's numbers mean, where the names alone do not say it (printed under the section).
SECTION_NOTES: dict[str, tuple[str, ...]] = {
    "flows": (
        "`cpu_ms_per_flow_*`: the CPU time of the one client process running `n` flows in a row (propose, "
        "signed approve, warrant, guard execute), per flow, the median of `rounds` interleaved rounds; "
        "`wall_ms_per_flow_*` the same in wall time. PostgreSQL's server CPU is not included, so the "
        "PostgreSQL / SQLite ratio understates what PostgreSQL costs the machine; "
        "`server_cpu_ms_per_flow_postgresql` is the server's CPU over the same flows (all its processes, "
        "read from `/proc`).",
        "`cpu_ceiling_flows_per_s_*`: the flows/s this machine could complete if all its `cores` did nothing "
        "but flows (cores × 1,000 / the CPU ms of one flow, client and server). No number of clients can pass "
        "it, so a flows/s goal above it cannot be met on this machine at this CPU per flow; flows/s divided by "
        "it is the share of the machine the concurrent clients put to use.",
        "`flows_per_s_*`: `clients` processes on one store for 10 s (one round); afterwards every warrant must "
        "be consumed exactly once and `audit verify` must pass, or the run fails.",
        "`statements_per_flow_*` / `commits_per_flow_*`: SQL statements sent (every one, `BEGIN` included) and "
        "transactions committed per flow. `sqlite_synchronous`: the store's `PRAGMA synchronous` read back "
        "(1 = NORMAL: the commit writes the log without syncing it; 2 = FULL, before 2026-11-28); "
        "`sqlite_wal_fsyncs_per_flow`: the store's own fsyncs of the log file after its commits, outside the "
        "write lock, per flow (one per commit); `pg_synchronous_commit_on`: 1 when the throwaway cluster ran "
        "with `fsync` and `synchronous_commit` on.",
        "`clients`, `n` and `rounds` are the options of the run (`python -m bench.bench_flows --help`).",
    ),
}


def generic_section(name: str, r: dict[str, Any]) -> list[str]:
    """A benchmark's numbers as a table, its comparisons as ratios, its notes."""
    title = r.get("title") or f"bench_{name}"
    out = [f"## {title} (`bench/bench_{name}.py`)", ""]
    if "missing" in r:
        return [*out, f"Not run: {r['missing']}.", ""]
    if "error" in r:
        return [*out, f"**Failed**: `{r['error'][:500]}`", ""]
    comparisons = _comparisons(name, r)
    if comparisons:
        out += ["| comparison | ratio | absolute |", "|---|---|---|"]
        for what, a, b, unit in comparisons:
            out.append(f"| {what} | {ratio(a, b)} | {fmt_num(a)} vs {fmt_num(b)} {unit} |")
        out.append("")
    for table in r.get("tables", []):
        out += [f"{table.get('title', '')}", "", "| " + " | ".join(table["columns"]) + " |",
                "|" + "---|" * len(table["columns"])]
        out += ["| " + " | ".join(fmt_num(c) for c in row) + " |" for row in table["rows"]]
        out.append("")
    flat: list[tuple[str, Any]] = []
    _flat("", {k: v for k, v in r.items() if not k.startswith("_") and k not in ("title", "notes", "tables")}, flat)
    if flat:
        out += ["| measurement | value |", "|---|---|"]
        out += [f"| {k} | {fmt_num(v)} |" for k, v in flat]
        out.append("")
    notes = [*r.get("notes", []), *SECTION_NOTES.get(name, ())]
    out += [f"- {n}" for n in notes]
    if notes:
        out.append("")
    return out


def render(report: dict[str, Any]) -> str:
    """docs/benchmarks.md from a report."""
    m, v, results = report["machine"], report["versions"], report["results"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{report.get('command') or 'python -m bench' + (' --smoke' if report['smoke'] else '')}` on "
        f"{report['date']} ({report['seconds']:.0f} s). Regenerate with `python -m bench` (or `scripts/bench`); "
        "`--only NAME`, `--sizes 100,10000`, `--smoke` for a quick check.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['os']}; load average at start "
        f"{' / '.join(str(x) for x in m['load_average'])} (1 / 5 / 15 min). Shared machine: compare ratios "
        "measured in the same run rather than absolute numbers across runs.",
        f"- Versions: Python {v['python']}, regopy {v['regopy']}, OPA {v['opa']}, PostgreSQL {v['postgresql']}, "
        f"SQLite {v['sqlite']}, SQLAlchemy {v['SQLAlchemy']}, psycopg {v['psycopg']}, "
        f"cryptography {v['cryptography']}, PyYAML {v['PyYAML']}; hitlgate commit {v['hitlgate']}.",
        "",
        "## Goals of issue 9",
        "",
        "| goal | target | measured | |",
        "|---|---|---|---|",
    ]
    goal_rows = []
    if "scaling" in results and "sizes" in results["scaling"]:
        goal_rows += scaling_goals(results["scaling"])
    goal_rows += other_goals(results)
    if report["smoke"]:
        # Tiny sizes (300 pending requests, 2 clients, 100 identities) say nothing about the goals' sizes.
        lines[-2:-2] = ["A smoke run measures tiny sizes: no goal is graded by it.", ""]
        goal_rows = [(g, t, mv, "not graded (smoke)") for g, t, mv, _ in goal_rows]
    lines += [f"| {g} | {t} | {mv} | {ok} |" for g, t, mv, ok in goal_rows]
    lines += ["", "## Before (issue 9, measured before the work)", "",
              "| identities | backend init | RSS after init | raw regopy query p50 / p99 | decide p50 / p99 |",
              "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in BEFORE]
    lines.append("")
    for name in BENCHES:
        r = results.get(name)
        if r is None:
            continue
        section = scaling_section(r) if name == "scaling" and "sizes" in r else generic_section(name, r)
        if r.get("_date") and r["_date"] != report["date"]:
            at = f"at hitlgate commit {r['_commit']}" if r.get("_commit") else "at an earlier commit"
            section[1:1] = ["", f"(Kept from the run of {r['_date']} {at}; not rerun with the others, so the code "
                                f"may have changed since: `python -m bench --only {name}` measures it again.)"]
        lines += section
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write the report."""
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes: the whole suite in 1-2 minutes (longer on a busy machine, plus an OPA "
                         "build of several minutes the first time)")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help=f"run only these benchmarks (repeat or comma-separate; of {', '.join(BENCHES)})")
    ap.add_argument("--sizes", help="identity counts for the scaling benchmark, e.g. 100,10000")
    ap.add_argument("--out", type=Path, default=None,
                    help="the Markdown report (default docs/benchmarks.md; with --smoke, a temporary directory, so a "
                         "smoke run never overwrites the committed report)")
    ap.add_argument("--json", type=Path, help="also write every number as JSON here (default: the report's .json)")
    keep = ap.add_mutually_exclusive_group()
    keep.add_argument("--keep", action="store_true", default=None,
                      help="keep the results of benchmarks not run now from the JSON of the last run (marked with "
                           "their date); the default with --only, so the report keeps every section (a --smoke "
                           "report starts in a new temporary directory, so it has nothing to keep)")
    keep.add_argument("--no-keep", dest="keep", action="store_false",
                      help="with --only: write a report of these benchmarks alone")
    ap.add_argument("--workdir", type=Path, help="keep the generated inventories here and reuse them next time")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="hitlgate-bench-")) / "benchmarks.md" if args.smoke else DEFAULT_OUT
    names = list(BENCHES)
    if args.only:
        wanted = [n.strip().removeprefix("bench_") for chunk in args.only for n in chunk.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in BENCHES]
        if unknown:
            ap.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
        names = [n for n in BENCHES if n in wanted]
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    if args.keep is None:
        # `--only flows` on the committed report must not drop every other section from it.
        args.keep = bool(args.only)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)]),
        "smoke": args.smoke,
        "machine": machine(),
        "versions": versions(),
        "results": {},
    }
    json_path = args.json or args.out.with_suffix(".json")
    ensure_opa(log)
    for name in names:
        log(f"{name}: running")
        report["results"][name] = run_one(name, args.smoke, sizes, log, args.workdir)
        report["results"][name]["_date"] = report["date"]
        report["results"][name]["_commit"] = report["versions"]["hitlgate"]
        log(f"{name}: done in {report['results'][name].get('_seconds', 0):.1f} s")
    if args.keep and json_path.exists():
        previous = json.loads(json_path.read_text(encoding="utf-8"))
        for name, result in previous.get("results", {}).items():
            if name not in report["results"]:
                result.setdefault("_date", previous.get("date"))
                report["results"][name] = result
    report["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(report), encoding="utf-8")
    json_path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    log(f"wrote {args.out}")
    failed = [n for n, r in report["results"].items() if "error" in r]
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench --smoke` runs every benchmark end to end, so the benchmarks cannot rot.

No timing is asserted (CI machines differ); what is asserted is that the
command succeeds, the report has every section, and every number it
measured is a positive number rather than a zero, a NaN or a missing key.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Measurements that may legitimately be zero (flags, counts of failures, a cached step, a delta).
MAY_BE_ZERO = ("thread_extra_rss_mb", "generate_s", "sqlite_synchronous", "pg_synchronous_commit_on", "errors",
               "load_average")


def _numbers(prefix: str, value: Any) -> Iterator[tuple[str, float]]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield prefix, float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            if not str(k).startswith("_") and k != "options":
                yield from _numbers(f"{prefix}.{k}", v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(f"{prefix}[{i}]", v)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """Run the smoke suite once; return (Markdown report, JSON report)."""
    opa = subprocess.run([str(REPO / "scripts" / "install-opa")], capture_output=True, text=True, timeout=1800,
                         check=False)
    if opa.returncode != 0:
        pytest.fail(f"OPA is missing: scripts/install-opa failed:\n{opa.stderr}", pytrace=False)
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "HITLGATE_OPA": opa.stdout.strip()}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out / "b.md"), "--json", str(out / "b.json")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return (out / "b.md").read_text(), json.loads((out / "b.json").read_text())


def test_report_has_every_section(smoke: tuple[str, dict[str, Any]]) -> None:
    md, report = smoke
    for heading in ("# Benchmarks", "## Goals of issue 9", "## Before (issue 9", "## Scaling with inventory size",
                    "## bench_decide", "## bench_backends", "## bench_warrants", "## bench_workflow"):
        assert heading in md, heading
    assert "- Machine: " in md and " cores, " in md and "load average at start" in md
    # Smoke sizes are not the goals' sizes: no goal is marked met or missed by them.
    assert "not graded (smoke)" in md and "**met**" not in md and "**missed**" not in md
    # Every goal a benchmark declares has its row in the goals table (graded in a full run).
    for row in ("(policy_check.policy_check_wall_s)", "(console.pending_list_p99_ms)", "(flows.flows_per_s_sqlite)"):
        assert row in md.split("## Before")[0], row
    for name in ("Python", "regopy", "OPA", "PostgreSQL", "SQLite", "hitlgate commit"):
        assert f"{name} " in md, name
    # The benchmarks other helpers are writing appear once they exist, and then must not fail.
    for name in ("flows", "store", "inventory_db", "service", "policy_check", "console"):
        assert "## " in md and f"bench/bench_{name}.py" in md
        assert "error" not in report["results"][name], report["results"][name].get("error")
    assert set(report["results"]) == {
        "scaling", "decide", "backends", "warrants", "workflow", "flows", "store", "inventory_db", "service",
        "policy_check", "console",
    }


def test_scaling_measured_every_mode_with_real_opa(smoke: tuple[str, dict[str, Any]]) -> None:
    _, report = smoke
    (size,) = report["results"]["scaling"]["sizes"].values()
    for key in ("start_to_first_decision_s", "start_rss_mb", "raw_regopy_p50_ms", "decide_embedded_p99_ms",
                "decide_opa_p50_ms", "raw_opa_p99_ms", "thread_first_decide_ms", "change_visible_s"):
        assert key in size, (key, size.get("error"), size.get("notes"))
    assert "error" not in size and "start_error" not in size


def test_every_number_is_positive(smoke: tuple[str, dict[str, Any]]) -> None:
    _, report = smoke
    seen = 0
    for path, value in _numbers("", report["results"]):
        seen += 1
        assert math.isfinite(value), path
        if path.rsplit(".", 1)[-1].split("[")[0] in MAY_BE_ZERO:
            assert value >= 0, (path, value)
        else:
            assert value > 0, (path, value)
    assert seen >= 50


def test_service_benchmark_measured_every_mode(smoke: tuple[str, dict[str, Any]]) -> None:
    # bench_service.py exists, so `--only service` must accept it and the suite must run it.
    _, report = smoke
    service = report["results"]["service"]
    assert set(service["results"]) == {
        "opa raw (POST /v1/data)", "decide (POST /v1/decisions)", "propose (POST /v1/requests)"
    }
    assert all(r["errors"] == 0 for r in service["results"].values()), service["results"]


def test_only_accepts_every_benchmark_module() -> None:
    # Every bench/bench_<name>.py with numbers to report is in the registry `--only` checks.
    from bench.__main__ import BENCHES

    modules = {p.stem.removeprefix("bench_") for p in (REPO / "bench").glob("bench_*.py")}
    assert modules == set(BENCHES), modules ^ set(BENCHES)
    help_text = subprocess.run([sys.executable, "-m", "bench", "--help"], cwd=REPO, capture_output=True, text=True,
                               timeout=60, check=True).stdout
    assert "issue 9" not in help_text
    assert "service" in help_text and "1-2 minutes" in help_text


def test_flows_ran_durable_with_one_log_sync_per_commit(smoke: tuple[str, dict[str, Any]]) -> None:
    # The store commits in WAL mode without a sync (NORMAL) and fsyncs the log itself after each commit: a flow
    # whose commits were not each followed by that fsync would not survive a power loss.
    _, report = smoke
    flows = report["results"]["flows"]
    assert flows["sqlite_synchronous"] == 1
    assert flows["commits_per_flow_sqlite"] >= 4
    assert flows["sqlite_wal_fsyncs_per_flow"] == flows["commits_per_flow_sqlite"]

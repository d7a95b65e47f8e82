"""How long ``hitlgate policy check --base`` takes on a large pack: the goal is under a minute.

    python -m bench.bench_policy_check                      # 1,000 targets, a 10,000-line replay
    python -m bench.bench_policy_check --targets 2000 --replay-lines 20000 --json
    python -m bench --only policy_check               # the same, in the benchmark report

Builds a throwaway git repository holding a project with the bundled Rego
modules, the bundled scenario corpus and a generated inventory
(``bench/gen_inventory.py``) of at least 1,000 targets (770 identities and
231 workloads),
commits it on ``main``, then makes the worst case for the diff: the
modules change (so no decision can be reused from the base; every
distinct proposal is evaluated on both sides) and ten identities leave
production. The replay is an audit-export-shaped file of generated
``proposed`` events. It runs the real CLI in a subprocess:

    hitlgate policy check --base main --replay replay.jsonl --format json --fail-on never

and reports the wall time of the whole command, the diff's own time, how
many proposals were compared and how many distinct ones each side
evaluated. Nothing is asserted: this is a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.gen_inventory import Spec, generate, proposals, write_yaml
from hitlgate.engine._resources import bundled_policy_dir, bundled_scenario_dir

CONFIG = "policy: policies\ndata: [policies/data]\nscenarios: policies/scenarios\n"
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,  # noqa: S603, S607 - fixed argv.
                   env={**os.environ, **GIT_ENV}, timeout=300)


def build(root: Path, size: int, replay_lines: int) -> Path:
    """The repository (base committed, head changed in the working tree); returns the replay file."""
    project = root / "repo"
    policies = project / "policies"
    (policies / "data").mkdir(parents=True)
    for rego in bundled_policy_dir().glob("*.rego"):
        shutil.copy(rego, policies / rego.name)
    shutil.copytree(bundled_scenario_dir(), policies / "scenarios")
    (project / "hitlgate.yaml").write_text(CONFIG)
    spec = Spec(size)
    with (policies / "data" / "inventory.yaml").open("w") as fh:
        write_yaml(spec, fh)
    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "base")
    # The head: a policy change (high privilege alone no longer needs an approval) and ten identities
    # that leave production.
    decision = policies / "decision.rego"
    decision.write_text(decision.read_text().replace('"federated_partner", "high_privilege"}', '"federated_partner"}'))
    inventory = policies / "data" / "inventory.yaml"
    lines = inventory.read_text().splitlines(keepends=True)
    moved = 0
    for i, line in enumerate(lines):
        if moved < 10 and '"kind": ' in line and '"environment": "production"' in line:
            lines[i] = line.replace('"environment": "production"', '"environment": "staging"')
            moved += 1
    inventory.write_text("".join(lines))
    replay = root / "replay.jsonl"
    doc = generate(size)
    with replay.open("w") as fh:
        for n, p in enumerate(proposals(spec, replay_lines, inventory=doc)):
            fh.write(json.dumps({"record": "event", "seq": n + 1, "at": "2026-10-01T00:00:00.000000Z",
                                 "kind": "proposed", "request_id": f"req-{n}", "payload": p,
                                 "prev_hash": "sha256:" + "0" * 64, "hash": "sha256:" + "0" * 64}) + "\n")
    return replay


def identities_for(targets: int) -> int:
    """The fewest identities whose generated inventory has at least ``targets`` targets (identities + workloads)."""
    size = max(1, targets * 10 // 13 - 2)
    while size + Spec(size).n_workloads < targets:
        size += 1
    return size


def measure(targets: int = 1000, replay_lines: int = 10_000) -> dict[str, Any]:
    """Build the repository, run the check once, and return the measurements."""
    size = identities_for(targets)
    with tempfile.TemporaryDirectory(prefix="hitlgate-bench-check-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        replay = build(root, size, replay_lines)
        built = time.perf_counter() - started
        cmd = [sys.executable, "-c", "from hitlgate.cli import main; main()", "--config", "hitlgate.yaml",
               "policy", "check", "--base", "main", "--replay", str(replay), "--format", "json", "--fail-on", "never"]
        started = time.perf_counter()
        done = subprocess.run(cmd, cwd=root / "repo", capture_output=True, text=True,  # noqa: S603 - fixed argv.
                              timeout=1800, check=False)
        wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(f"policy check exited {done.returncode}: {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    diff = report["diff"]
    return {
        "targets": size + Spec(size).n_workloads,
        "identities": size,
        "replay_lines": replay_lines,
        "build_s": round(built, 2),
        "policy_check_wall_s": round(wall, 2),
        "diff_s": diff["seconds"],
        "checks_s": round(sum(s["seconds"] for s in report["steps"]), 2),
        "compared": diff["compared"],
        "evaluations": diff["evaluations"],
        "changed": sum(len(c["proposals"]) for c in diff["changes"]),
        "summary": diff["summary"],
        "_load_average": os.getloadavg()[0],
        "_cpus": os.cpu_count(),
    }


#: The policy CI goal (metric, op, target, description), graded in the report.
GOALS = [
    ("policy_check_wall_s", "<=", 60.0,
     "`hitlgate policy check --base` on 1,000 identities with a 10,000-line replay, wall s"),
]


def run(mode: Any = "full", *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The ``python -m bench`` entry: full is 1,000 targets and 10,000 replay lines; smoke is 40 and 200."""
    targets, lines = (40, 200) if mode == "smoke" else (1000, 10_000)
    result = measure(targets, lines)
    if log is not None:
        log(f"  policy check --base: {result['policy_check_wall_s']} s ({result['diff_s']} s diff), "
            f"{result['targets']} targets, {lines} replay lines")
    return result


def main() -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000, help="targets (identities + workloads) to generate")
    parser.add_argument("--replay-lines", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    args = parser.parse_args()
    result = measure(args.targets, args.replay_lines)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

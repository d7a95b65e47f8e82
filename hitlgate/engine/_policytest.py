"""Running the Rego unit tests of a pack with the real OPA binary.

regopy cannot run ``*_test.rego`` files (it does not implement ``with``, and
crashes on it), so the unit tests run under ``opa check --strict`` and
``opa test``, which are also the judge of what valid Rego v1 is. The OPA
binary is found via ``$HITLGATE_OPA``, then ``opa`` on ``PATH``, then the
cache that ``scripts/install-opa`` fills.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # noqa: S404 - runs the OPA binary with fixed arguments, no shell.
from dataclasses import dataclass
from pathlib import Path

from hitlgate.engine.policy import policy_files, test_files
from hitlgate.errors import PolicyError

OPA_VERSION = "v1.22.3"


def find_opa() -> Path | None:
    """Locate an OPA binary, or None."""
    env = os.environ.get("HITLGATE_OPA")
    if env:
        return Path(env)
    found = shutil.which("opa")
    if found:
        return Path(found)
    cache = Path(os.environ.get("HITLGATE_CACHE") or Path.home() / ".cache" / "hitlgate")
    candidate = cache / "opa" / OPA_VERSION / "bin" / "opa"
    return candidate if candidate.is_file() else None


@dataclass(frozen=True)
class RegoTestResult:
    """Outcome of ``opa check`` plus ``opa test`` on a pack."""

    ok: bool
    output: str
    tests: int


def run_rego_tests(policy_dir: Path, opa: Path | None = None, timeout: float = 120.0) -> RegoTestResult:
    """Run ``opa check --strict`` and ``opa test`` on the pack's modules."""
    opa = opa or find_opa()
    if opa is None:
        raise PolicyError(
            "the Rego unit tests need the opa binary: run scripts/install-opa, "
            "set HITLGATE_OPA, or pass --no-rego-tests"
        )
    modules = [str(p) for p in policy_files(policy_dir)]
    tests = [str(p) for p in test_files(policy_dir)]
    try:
        check = subprocess.run(  # noqa: S603 - fixed argv.
            [str(opa), "check", "--strict", *modules, *tests],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check.returncode != 0:
            return RegoTestResult(False, "opa check --strict failed:\n" + check.stdout + check.stderr, 0)
        if not tests:
            return RegoTestResult(False, f"no *_test.rego files in {policy_dir}", 0)
        run = subprocess.run(  # noqa: S603 - fixed argv.
            [str(opa), "test", "--format", "pretty", "-v", *modules, *tests],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PolicyError(f"could not run {opa}: {exc}") from exc
    count = sum(1 for line in run.stdout.splitlines() if any(m in line for m in (": PASS (", ": FAIL (", ": ERROR (")))
    return RegoTestResult(run.returncode == 0, run.stdout + run.stderr, count)

"""Fault: hitlgate runs under a virtual-memory limit (``ulimit -v``) too small for regopy's allocator.

regopy's allocator reserves 256 GiB of address space on load and calls
``abort()`` when it cannot: ``(ulimit -v 6000000; hitlgate --json decide
proposal.json)`` died with exit 134 and "Failed to initialise snmalloc.",
no JSON and no hint. Now the limit is checked before regopy is imported
and the command fails with error code ``address_space_limit`` (exit 1),
naming the limit and the size needed.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine.decide._addrspace import SNMALLOC_RESERVATION, needed_address_space

LIMIT_KIB = 6_000_000
REPO = Path(__file__).resolve().parents[2]


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_KIB * 1024, resource.RLIM_INFINITY))


def _hitlgate_under_limit(*args: str) -> subprocess.CompletedProcess[str]:
    # The CLI of this checkout (not whatever console script is installed next to the interpreter).
    code = "import sys; from hitlgate.cli import main; sys.exit(main())"
    return subprocess.run(  # noqa: S603 - this interpreter, fixed argv.
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
        preexec_fn=_limit_address_space,  # noqa: PLW1509 - only sets an rlimit, no locks taken.
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    return proj


def test_decide_under_ulimit_v_fails_with_address_space_limit_not_abort(project: Path) -> None:
    result = _hitlgate_under_limit("--config", str(project / "hitlgate.yaml"), "--json", "decide",
                                   str(project / "proposal.json"))
    assert "snmalloc" not in result.stderr
    assert result.returncode == 1, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "address_space_limit"
    assert f"is {LIMIT_KIB:,} KiB" in error["message"]
    assert "reserves 256 GiB" in error["message"]


def test_policy_test_under_ulimit_v_fails_with_address_space_limit(project: Path) -> None:
    result = _hitlgate_under_limit("--config", str(project / "hitlgate.yaml"), "--json", "policy", "test",
                                   "--no-rego-tests")
    assert "snmalloc" not in result.stderr
    assert result.returncode != 134, result.stderr
    assert "address_space_limit" in result.stdout + result.stderr


def test_needed_address_space_is_the_reservation_plus_what_is_mapped() -> None:
    needed = needed_address_space()
    with open("/proc/self/statm", encoding="ascii") as fh:
        mapped = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    assert SNMALLOC_RESERVATION + mapped < needed < SNMALLOC_RESERVATION + mapped + 256 * 1024**2

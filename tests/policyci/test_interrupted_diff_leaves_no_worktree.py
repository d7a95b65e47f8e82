"""``policy check --base`` never leaves a ``hitlgate-base-*`` worktree registered in the repository.

SIGTERM during the diff left ``/tmp/hitlgate-base-*/base`` in ``git
worktree list``; so did SIGINT during ``git worktree add`` and a failing
post-checkout hook. A run killed outright leaves a worktree locked with its
pid, which the next run removes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import hitlgate
from tests.policyci.conftest import GIT_ENV, clone, git, run_check

pytestmark = pytest.mark.opa


def _base_worktrees(repo: Path) -> list[str]:
    return [line for line in git(repo, "worktree", "list", "--porcelain").splitlines()
            if line.startswith("worktree ") and "hitlgate-base-" in line]


def _base_worktree_seen(repo: Path) -> bool:
    """Whether a base worktree is listed yet, while the check may be inside ``git worktree add``.

    That command writes the worktree's entry under ``.git/worktrees`` file by file, so a listing at
    that moment can fail ("failed to read .git/worktrees/base/commondir"): not seen yet. The
    assertions after the run list strictly (:func:`_base_worktrees`).
    """
    run = subprocess.run(  # noqa: S603 - a fixed argv.
        ["git", "worktree", "list", "--porcelain"], cwd=repo, capture_output=True, text=True,  # noqa: S607
        timeout=120, check=False, env={**os.environ, **GIT_ENV},
    )
    return run.returncode == 0 and any(line.startswith("worktree ") and "hitlgate-base-" in line
                                       for line in run.stdout.splitlines())


def test_sigterm_during_diff_removes_the_worktree(base_repo: Path, tmp_path: Path) -> None:
    project = clone(base_repo, tmp_path / "repo")
    # This checkout's code, whatever console script an interpreter's bin directory holds.
    source = str(Path(hitlgate.__file__).resolve().parents[1])
    proc = subprocess.Popen(  # noqa: S603 - our own CLI.
        [sys.executable, "-c", "from hitlgate.cli import main; main()", "--config", "hitlgate.yaml", "policy",
         "check", "--base", "main"], cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, **GIT_ENV, "PYTHONPATH": source},
    )
    try:
        deadline = time.monotonic() + 120
        while not _base_worktree_seen(project.parent) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the check ended before its worktree was seen"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _base_worktrees(project.parent) == []


def test_stale_worktree_of_a_dead_run_is_removed(base_repo: Path, tmp_path: Path) -> None:
    project = clone(base_repo, tmp_path / "repo")
    stale = Path(tempfile.mkdtemp(prefix="hitlgate-base-")) / "base"
    dead = subprocess.Popen(["true"])  # noqa: S607 - a pid that is surely gone.
    dead.wait()
    git(project.parent, "worktree", "add", "--detach", "--quiet", "--lock", "--reason",
        f"hitlgate policy check pid {dead.pid}", str(stale), "main")
    assert len(_base_worktrees(project.parent)) == 1
    run = run_check(project, "--base", "main")
    assert run.exit_code == 0, run.stdout
    assert _base_worktrees(project.parent) == []
    assert not stale.exists()


def test_failing_post_checkout_hook_is_not_run(base_repo: Path, tmp_path: Path) -> None:
    project = clone(base_repo, tmp_path / "repo")
    hook = project.parent / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    run = run_check(project, "--base", "main")
    assert run.exit_code == 0, run.stdout
    assert _base_worktrees(project.parent) == []
    assert "prunable" not in git(project.parent, "worktree", "list", "--porcelain")

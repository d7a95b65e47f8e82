"""Throwaway git repositories holding a hitlgate project, for ``hitlgate policy check``.

The base repository is made once per session: ``hitlgate init proj``, a
few real proposals (so ``hitlgate audit export`` has something to replay),
committed on ``main``. Each test module clones it, changes the working tree
the way a pull request would, and runs the real CLI (real git, real OPA,
the embedded engine) once per change with every format written through
``--output``, so one run answers every format's assertions.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from tests.conftest import make_proposal

GIT_ENV = {
    "GIT_AUTHOR_NAME": "policy-ci-test", "GIT_AUTHOR_EMAIL": "ci@example.invalid",
    "GIT_COMMITTER_NAME": "policy-ci-test", "GIT_COMMITTER_EMAIL": "ci@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}

FORMATS = ("text", "markdown", "json", "junit", "sarif", "github")


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; fail the test with its stderr when it fails."""
    run = subprocess.run(  # noqa: S603 - the test's own fixed argv.
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False,  # noqa: S607
        env={**os.environ, **GIT_ENV},
    )
    assert run.returncode == 0, f"git {' '.join(args)}: {run.stderr}"
    return run.stdout


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run inside ``path`` (paths in reports are relative to the working directory)."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@dataclass
class Run:
    """One ``hitlgate policy check`` run and every format it wrote."""

    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def doc(self) -> dict[str, Any]:
        """The JSON report."""
        return dict(json.loads(self.outputs["json"]))

    def step(self, step_id: str) -> dict[str, Any]:
        """One step of the JSON report."""
        return next(s for s in self.doc["steps"] if s["id"] == step_id)


def run_check(project: Path, *args: str, env: dict[str, str | None] | None = None) -> Run:
    """``hitlgate policy check ARGS`` in ``project``, every format written to files, the Markdown summary too."""
    out = project.parent / f"reports-{len(list(project.parent.glob('reports-*')))}"
    out.mkdir()
    summary = out / "step-summary.md"
    outputs = [f"--output={fmt}={out / fmt}" for fmt in FORMATS]
    with working_directory(project):
        result = CliRunner().invoke(
            cli, ["--config", "hitlgate.yaml", "policy", "check", *args, *outputs],
            env={"GITHUB_STEP_SUMMARY": str(summary), **(env or {})}, catch_exceptions=False,
        )
    run = Run(result.exit_code, result.stdout, result.stderr)
    for fmt in FORMATS:
        path = out / fmt
        if path.exists():
            run.outputs[fmt] = path.read_text(encoding="utf-8")
    if summary.exists():
        run.outputs["step-summary"] = summary.read_text(encoding="utf-8")
    return run


@pytest.fixture(scope="session")
def base_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository with a ``hitlgate init`` project committed on main, and its audit export."""
    repo = tmp_path_factory.mktemp("policy-ci") / "repo"
    result = CliRunner().invoke(cli, ["init", str(repo / "proj")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = str(repo / "proj" / "hitlgate.yaml")
    for action, target in (("suspend_service_account", "svc-reporting"), ("rotate_api_key", "dev-analytics-key"),
                           ("isolate_workload", "build-pipeline")):
        doc = repo.parent / f"{target}.json"
        doc.write_text(json.dumps(make_proposal(action, target)))
        done = CliRunner().invoke(cli, ["--config", config, "propose", str(doc)], catch_exceptions=False)
        assert done.exit_code in (0, 4), done.output
    export = CliRunner().invoke(cli, ["--config", config, "audit", "export", "--out",
                                      str(repo.parent / "audit.jsonl")], catch_exceptions=False)
    assert export.exit_code == 0, export.output
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base project")
    return repo


def clone(base_repo: Path, dest: Path) -> Path:
    """A fresh clone of the base repository (branch main checked out); returns its project directory."""
    git(dest.parent, "clone", "-q", str(base_repo), dest.name)
    return dest / "proj"


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must occur) with ``new`` in ``path``."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")

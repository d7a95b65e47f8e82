"""``scripts/mutation`` never reports a pass for a mutant it did not see killed.

The hostile review of issue 13 found two ways the gate could pass without
a kill: mutmut's worker exits 255 when the test runner raised for a
mutant, and the summary counted 255 as a timeout (a pass); and a sampled
function renamed in the code matched no mutant at all, so its check left
the CI gate with a green summary of zeros.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
QUORUM = "hitlgate.engine.approve.quorum.x_assess__mutmut_"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("mutation_script", str(REPO / "scripts" / "mutation"))
    spec = importlib.util.spec_from_loader("mutation_script", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("code", "verdict"),
    [(1, "killed"), (37, "killed"), (0, "survived"), (-24, "timeout"), (152, "timeout"), (None, "not checked"),
     (255, "other"), (34, "other"), (-11, "other"), (3, "other")],
)
def test_each_exit_code_has_the_verdict_it_proves(script: ModuleType, code: int | None, verdict: str) -> None:
    assert script.status(code) == verdict


def test_a_crashed_mutant_run_fails_the_summary(script: ModuleType, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert script.summarise({f"{QUORUM}1": 1, f"{QUORUM}2": -24}, tmp_path) is True
    assert script.summarise({f"{QUORUM}1": 1, f"{QUORUM}2": 255}, tmp_path) is False
    assert f"other: {QUORUM}2" in capsys.readouterr().out


def test_a_sampled_function_that_matches_no_mutant_is_named(script: ModuleType) -> None:
    codes = {f"{QUORUM}1": 1, f"{QUORUM}2": 1}
    present, renamed = script.pattern("approve.quorum:assess"), script.pattern("approve.quorum:assess_renamed")
    assert script.unmatched_patterns(codes, [present]) == []
    assert script.unmatched_patterns(codes, [present, renamed]) == [renamed]


def _local_packages_imported(test_file: Path) -> set[str]:
    """The repository's top-level folders a test file imports (``from bench.x import y`` -> bench)."""
    tree = ast.parse(test_file.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    return {n.split(".")[0] for n in names if (REPO / n.split(".")[0]).is_dir()}


def test_every_folder_the_full_runs_tests_import_is_copied(script: ModuleType) -> None:
    # A test importing a folder the mutation copy lacks fails its collection, and with it every
    # mutant's run: the ninth full run stopped on `from bench.gen_inventory import ...` in tests/core.
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]
    copied = {n.rstrip("/") for n in cfg["also_copy"]}
    files: list[Path] = []
    for entry in cfg["pytest_add_cli_args_test_selection"]:
        path = REPO / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    imported = set().union(*(_local_packages_imported(f) for f in files)) - {"hitlgate", "tests"}
    assert "bench" in imported  # What this test exists for is still there to check.
    assert imported <= set(script.COPY), sorted(imported - set(script.COPY))
    assert imported <= copied, sorted(imported - copied)
    # mutmut's also_copy copies from the run's folder, which holds only what COPY put there: an
    # entry missing from COPY is silently not copied (scripts/ was not, and this file loads it).
    assert copied <= set(script.COPY), sorted(copied - set(script.COPY))

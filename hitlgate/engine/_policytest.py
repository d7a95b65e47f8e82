"""``hitlgate policy test``: check a pack, run its Rego unit tests and its scenario corpus.

One root cause, one report. The stages run in this order, and a pack that
does not load or compile stops the run with one :class:`~hitlgate.errors.PolicyError`
that names each problem (``file:line:col: message``, as ``opa check`` does)
instead of failing every unit test and every scenario the same way:

1. load the pack: the Rego modules and the inventory (schema, references);
2. ``opa check --strict`` on the modules and their tests (when the unit
   tests run), the judge of valid Rego v1;
3. compile the pack with regopy, when the embedded engine decides: regopy
   accepts a smaller language than OPA, and a pack it cannot compile would
   deny every proposal;
4. ``opa test`` on the ``*_test.rego`` files;
5. the scenario corpus, on the configured engine. Its failures are grouped:
   cases that failed closed for the same reason are reported once.

regopy cannot run ``*_test.rego`` files (it does not implement ``with``, and
crashes on it), so the unit tests need the OPA binary, found via
``$HITLGATE_OPA``, then ``opa`` on ``PATH``, then the cache that
``hitlgate opa install`` (and ``scripts/install-opa``) fills.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess  # noqa: S404 - runs the OPA binary with fixed arguments, no shell.
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hitlgate.engine._opabin import OPA_VERSION, cached_opa_path
from hitlgate.engine._rego_errors import RegoCompileError, RegoProblem, from_opa_check
from hitlgate.engine.config import Config
from hitlgate.engine.decider import Decider
from hitlgate.engine.inventory import inventory_files
from hitlgate.engine.policy import PolicyPack, policy_files, test_files
from hitlgate.engine.scenarios import ScenarioReport, load_scenarios, run_scenarios
from hitlgate.errors import BackendUnavailable, PolicyError, ValidationError


def find_opa() -> Path | None:
    """Locate an OPA binary, or None: ``$HITLGATE_OPA``, ``opa`` on PATH, then ``hitlgate opa install``'s cache."""
    env = os.environ.get("HITLGATE_OPA")
    if env:
        return Path(env)
    found = shutil.which("opa")
    if found:
        return Path(found)
    candidate = cached_opa_path()
    return candidate if candidate.is_file() else None


def _require_opa(opa: Path | None) -> Path:
    opa = opa or find_opa()
    if opa is None:
        raise BackendUnavailable(
            "the Rego unit tests need an opa binary: run `hitlgate opa install` (builds the pinned "
            f"{OPA_VERSION} with Go, about 2-5 minutes the first time), or use any opa on PATH or in "
            "$HITLGATE_OPA; --no-rego-tests runs only the scenario corpus",
            code="opa_missing",
        )
    return opa


@dataclass(frozen=True)
class RegoTestResult:
    """Outcome of ``opa test`` on a pack."""

    ok: bool
    output: str
    tests: int
    failed: int = 0


@dataclass(frozen=True)
class FailedGroup:
    """Scenario cases that failed closed for one and the same reason."""

    reason: str
    cases: tuple[str, ...]


@dataclass
class PolicyTestReport:
    """Non-raising result of the unit tests and the corpus of a pack that compiles."""

    backend: str
    rego: RegoTestResult | None = None
    scenarios: ScenarioReport = field(default_factory=ScenarioReport)

    @property
    def ok(self) -> bool:
        """Whether the unit tests (if run) and every scenario passed."""
        return (self.rego is None or self.rego.ok) and self.scenarios.ok

    def failed_closed_groups(self) -> list[FailedGroup]:
        """Failures whose decision failed closed, grouped by reason (the root causes)."""
        groups: dict[str, list[str]] = {}
        for f in self.scenarios.failed:
            if "evaluation_error" in f.decision.risk_factors and "evaluation_error" not in f.scenario.want_factors:
                groups.setdefault(f.decision.reasons[0], []).append(f.scenario.name)
        return [FailedGroup(reason, tuple(cases)) for reason, cases in groups.items()]


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def broken(what: str, problems: Sequence[RegoProblem]) -> PolicyError:
    """The one error for a pack that does not compile, each problem with its source line."""
    count = f"{len(problems)} error{'s' if len(problems) != 1 else ''}"
    lines = "\n".join("  " + p.render(indent="      ") for p in problems)
    return PolicyError(
        f"policy pack does not compile ({what}): {count}\n{lines}", problems=[str(p) for p in problems]
    )


def load_pack(config: Config) -> PolicyPack:
    """Stage 1: load the pack, or raise one PolicyError naming every problem (inventory ones with file:line)."""
    try:
        return PolicyPack.load(config.policy_dir, config.data_paths)
    except ValidationError as exc:
        # A bad inventory is a broken pack (exit 5), not a bad argument.
        try:
            files = inventory_files(config.data_paths)
        except PolicyError:
            files = []
        problems = [_locate(p, files) for p in exc.problems]
        lines = "\n".join(f"  - {p}" for p in problems)
        raise PolicyError(
            f"policy pack does not load: invalid {exc.what}: {len(problems)} problem(s)\n{lines}",
            problems=problems,
        ) from exc


def _locate(problem: str, files: Sequence[Path]) -> str:
    """Prefix an inventory problem (``[file.yaml: ]path: message``) with the file and line it points at."""
    head, sep, rest = problem.partition(": ")
    named = [f for f in files if f.name == head] if sep else []
    candidates, text = (named, rest) if named else (list(files), problem)
    path, sep, message = text.partition(": ")
    if not sep:
        return problem
    # "Additional properties are not allowed ('tags' was unexpected)": point at the field itself.
    extra = re.search(r"\('([^']+)' was unexpected\)", message)
    for f in candidates:
        line = _yaml_line(f, path, extra.group(1) if extra else None)
        if line is not None:
            return f"{display_path(f)}:{line}: {path}: {message}"
    return f"{display_path(named[0])}: {text}" if named else problem


def _yaml_line(file: Path, path: str, field_name: str | None) -> int | None:
    """1-based line of the node at a problem's path (``identities.key.used_by[0]``) in a YAML file, or None."""
    try:
        node = yaml.compose(file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    rest = "" if path == "(document)" else path
    line: int | None = None if rest else 1
    if field_name is not None:
        rest = f"{rest}.{field_name}" if rest else field_name
    while rest and node is not None:
        if isinstance(node, yaml.MappingNode):
            # Ids may contain dots, so take the longest key the path starts with.
            best: tuple[str, yaml.Node, yaml.Node] | None = None
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if rest == key or rest.startswith((key + ".", key + "[")):
                    if best is None or len(key) > len(best[0]):
                        best = (key, key_node, value_node)
            if best is None:
                return None
            key, key_node, node = best
            line, rest = key_node.start_mark.line + 1, rest[len(key) :].removeprefix(".")
        elif isinstance(node, yaml.SequenceNode):
            m = re.match(r"\[(\d+)\]", rest)
            if m is None or int(m.group(1)) >= len(node.value):
                return None
            node = node.value[int(m.group(1))]
            line, rest = node.start_mark.line + 1, rest[m.end() :].removeprefix(".")
        else:
            return None
    return line


def opa_check(policy_dir: Path, opa: Path | None = None, timeout: float = 120.0) -> None:
    """Stage 2: ``opa check --strict`` on the modules and tests; raise one PolicyError on failure."""
    opa = _require_opa(opa)
    files = [str(p) for p in [*policy_files(policy_dir), *test_files(policy_dir)]]
    try:
        check = subprocess.run(  # noqa: S603 - fixed argv.
            [str(opa), "check", "--strict", "--format", "json", *files],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendUnavailable(f"could not run {opa}: {exc}", code="opa_not_runnable") from exc
    if check.returncode == 0:
        return
    problems = from_opa_check(check.stderr) or from_opa_check(check.stdout)
    if not problems:
        text = (check.stdout + check.stderr).strip() or f"exit code {check.returncode}"
        raise PolicyError(f"policy pack does not compile (opa check --strict):\n{text}", problems=[text])
    raise broken("opa check --strict", [p.with_file(display_path(Path(p.file))) for p in problems])


def regopy_compile(pack: PolicyPack) -> None:
    """Stage 3: compile ``pack`` with regopy; raise one PolicyError on failure."""
    from hitlgate.engine._regopy import compile_pack

    try:
        compile_pack(pack)
    except RegoCompileError as exc:
        if not exc.rego_problems:
            raise
        raise broken(
            "regopy", [p.with_file(display_path(pack.policy_dir / p.file)) for p in exc.rego_problems]
        ) from exc


def run_rego_tests(policy_dir: Path, opa: Path | None = None, timeout: float = 120.0) -> RegoTestResult:
    """Stage 4: ``opa test`` on the pack's modules and ``*_test.rego`` files."""
    opa = _require_opa(opa)
    modules = [str(p) for p in policy_files(policy_dir)]
    tests = [str(p) for p in test_files(policy_dir)]
    if not tests:
        return RegoTestResult(False, f"no *_test.rego files in {display_path(policy_dir)}", 0)
    try:
        run = subprocess.run(  # noqa: S603 - fixed argv.
            [str(opa), "test", "--format", "pretty", "-v", *modules, *tests],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendUnavailable(f"could not run {opa}: {exc}", code="opa_not_runnable") from exc
    return RegoTestResult(run.returncode == 0, run.stdout + run.stderr, *_count_tests(run.stdout))


def _count_tests(output: str) -> tuple[int, int]:
    """(tests run, tests failed or errored) from ``opa test``'s summary lines ("PASS: 23/24", "FAIL: 1/24")."""
    total, failed = 0, 0
    for m in re.finditer(r"^(PASS|FAIL|ERROR): (\d+)/(\d+)$", output, re.M):
        total = int(m.group(3))
        if m.group(1) != "PASS":
            failed += int(m.group(2))
    return total, failed


def run_policy_test(config: Config, *, rego_tests: bool = True, opa: Path | None = None) -> PolicyTestReport:
    """Run every stage on the pack ``config`` names.

    Raises :class:`PolicyError` (once) for a pack that does not load or
    compile, and :class:`~hitlgate.errors.ValidationError` for a malformed
    scenario file; test failures are in the returned report.
    """
    pack = load_pack(config)
    if rego_tests:
        opa_check(config.policy_dir, opa)
    if config.backend.kind == "embedded":
        regopy_compile(pack)
    rego = run_rego_tests(config.policy_dir, opa) if rego_tests else None
    scenarios = load_scenarios([config.scenario_dir], limits=config.limits)
    # The report names every failing case with its reason, so the decider
    # does not also log each one.
    decider = Decider.from_config(config, log_failures=False)
    try:
        result = run_scenarios(decider, scenarios)
    finally:
        decider.close()
    return PolicyTestReport(backend=decider.backend.name, rego=rego, scenarios=result)

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

import json
import os
import re
import shutil
import subprocess  # noqa: S404 - runs the OPA binary with fixed arguments, no shell.
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitlgate.engine._safeparse import shorten
from hitlgate.engine.config import Config
from hitlgate.engine.decide._locate import display_path, locate_inventory_problem
from hitlgate.engine.decide._opabin import OPA_VERSION, cached_opa_path
from hitlgate.engine.decide._rego_errors import RegoCompileError, RegoProblem, from_opa_check
from hitlgate.engine.decide.decider import Decider
from hitlgate.engine.decide.inventory import inventory_files
from hitlgate.engine.decide.policy import PolicyPack, policy_files, test_files
from hitlgate.engine.decide.scenarios import ScenarioReport, load_scenarios, run_scenarios
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
            f"{OPA_VERSION} with Go: 2-5 minutes the first time on an idle machine, much longer on a busy "
            "one), or use any opa on PATH or in "
            "$HITLGATE_OPA; --no-rego-tests runs only the scenario corpus",
            code="opa_missing",
        )
    return opa


def _not_runnable(opa: Path, why: str) -> BackendUnavailable:
    """An OPA that cannot run, naming $HITLGATE_OPA when that is where the path came from."""
    env = os.environ.get("HITLGATE_OPA")
    hint = (" ($HITLGATE_OPA points at it: fix or unset it, or run `hitlgate opa install`)"
            if env and Path(env) == opa else "")
    return BackendUnavailable(f"could not run {opa}: {why}{hint}; --no-rego-tests runs only the scenario corpus",
                              code="opa_not_runnable")


@dataclass(frozen=True)
class RegoTestFailure:
    """One failing (or erroring) Rego unit test: where it is and, in one line, why."""

    name: str
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.name}: {self.message}"


@dataclass(frozen=True)
class RegoTestResult:
    """Outcome of ``opa test`` on a pack.

    ``failures`` names each failing test once; ``output`` is the full
    ``opa test -v`` trace, filled only when asked for (``verbose``), since
    one renamed factor makes it hundreds of lines long.
    """

    ok: bool
    output: str
    tests: int
    failed: int = 0
    failures: tuple[RegoTestFailure, ...] = ()


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
        # The inventory loader already names file:line; this locates what it could not.
        problems = [locate_inventory_problem(p, files) for p in exc.problems]
        lines = "\n".join(f"  - {p}" for p in problems)
        raise PolicyError(
            f"policy pack does not load: invalid {exc.what}: {len(problems)} problem(s)\n{lines}",
            problems=problems,
        ) from exc


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
        raise _not_runnable(opa, str(exc)) from exc
    if check.returncode == 0:
        return
    problems = from_opa_check(check.stderr) or from_opa_check(check.stdout)
    if not problems:
        text = (check.stdout + check.stderr).strip() or f"exit code {check.returncode}"
        raise PolicyError(f"policy pack does not compile (opa check --strict):\n{text}", problems=[text])
    raise broken("opa check --strict", [p.with_file(display_path(Path(p.file))) for p in problems])


def regopy_compile(pack: PolicyPack) -> None:
    """Stage 3: compile ``pack`` with regopy; raise one PolicyError on failure."""
    from hitlgate.engine.decide._regopy import compile_pack

    try:
        compile_pack(pack)
    except RegoCompileError as exc:
        if not exc.rego_problems:
            raise
        # The problems already name their files relative to the working directory.
        raise broken("regopy", list(exc.rego_problems)) from exc


#: At most this many failing tests are re-run to find the expression that failed.
_EXPLAINED_FAILURES = 10


def _run_opa(opa: Path, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # noqa: S603 - fixed argv.
            [str(opa), *args], capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _not_runnable(opa, str(exc)) from exc


def run_rego_tests(
    policy_dir: Path, opa: Path | None = None, timeout: float = 120.0, *, verbose: bool = False
) -> RegoTestResult:
    """Stage 4: ``opa test`` on the pack's modules and ``*_test.rego`` files.

    Runs ``opa test --format json`` and reports each failing test once, with
    its file:line and the test expression that failed. ``verbose`` adds the
    full ``opa test -v`` trace as ``output``.
    """
    opa = _require_opa(opa)
    files = [*(str(p) for p in policy_files(policy_dir)), *(str(p) for p in test_files(policy_dir))]
    if not test_files(policy_dir):
        return RegoTestResult(False, f"no *_test.rego files in {display_path(policy_dir)}", 0)
    run = _run_opa(opa, ["test", "--format", "json", *files], timeout)
    try:
        results = json.loads(run.stdout)
        if not isinstance(results, list):
            raise TypeError("not a list")
    except (ValueError, TypeError):
        if not (run.stdout + run.stderr).strip():
            # `opa test --format json` always prints a JSON list; silence means this is no OPA.
            raise _not_runnable(opa, f"it exited with {run.returncode} and said nothing: is it an OPA binary?") \
                from None
        text = (run.stdout + run.stderr).strip()
        return RegoTestResult(False, text, 0, 1, (RegoTestFailure("opa test", "", 0, text.splitlines()[0]),))
    failures = []
    # opa test runs packages concurrently; report in source order, the same on every run.
    failing = sorted(
        (x for x in results if x.get("fail") or x.get("error")),
        key=lambda x: (str((x.get("location") or {}).get("file", "")), int((x.get("location") or {}).get("row", 0))),
    )
    for i, r in enumerate(failing):
        failures.append(_failure(opa, files, r, timeout) if i < _EXPLAINED_FAILURES else _failure(None, files, r, 0))
    output = ""
    if verbose and failures:
        trace = _run_opa(opa, ["test", "--format", "pretty", "-v", *files], timeout)
        output = trace.stdout + trace.stderr
    ok = run.returncode == 0 and not failures
    return RegoTestResult(ok, output, len(results), len(failures), tuple(failures))


def _failure(opa: Path | None, files: Sequence[str], result: dict[str, Any], timeout: float) -> RegoTestFailure:
    """One failing test as name, file:line and a one-line reason (the failing expression when ``opa`` is given)."""
    location = result.get("location") or {}
    file, line = str(location.get("file", "")), int(location.get("row", 0))
    name = f"{str(result.get('package', '')).removeprefix('data.')}.{result.get('name', '?')}"
    error = result.get("error")
    if error:
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        return RegoTestFailure(name, display_path(Path(file)), line, f"error: {message}")
    message = "failed (the test body is false or undefined)"
    if opa is not None:
        where = _failed_expression(opa, files, str(result.get("package", "")), str(result.get("name", "")), file,
                                   line, timeout)
        if where is not None:
            row, text = where
            message = f"failed at line {row}: {text}"
    return RegoTestFailure(name, display_path(Path(file)), line, message)


def _failed_expression(
    opa: Path, files: Sequence[str], package: str, name: str, file: str, line: int, timeout: float
) -> tuple[int, str] | None:
    """The (row, source text) of the last expression of the test's body that failed, from its ``-v`` trace."""
    run = _run_opa(opa, ["test", "--format", "json", "-v", "--run", f"^{re.escape(package + '.' + name)}$", *files],
                   timeout)
    try:
        trace = json.loads(run.stdout)[0]["trace"] or []
    except (ValueError, LookupError, TypeError):
        return None
    rows = [
        int(e["Location"]["row"])
        for e in trace
        if isinstance(e, dict) and e.get("Op") == "Fail"
        and (e.get("Location") or {}).get("file") == file and int(e["Location"].get("row", 0)) > line
    ]
    if not rows:
        return None
    try:
        source = Path(file).read_text(encoding="utf-8").splitlines()[rows[-1] - 1].strip()
    except (OSError, UnicodeDecodeError, IndexError):
        return None
    return rows[-1], shorten(source, 120)


def run_policy_test(
    config: Config, *, rego_tests: bool = True, opa: Path | None = None, verbose: bool = False
) -> PolicyTestReport:
    """Run every stage on the pack ``config`` names.

    Raises :class:`PolicyError` (once) for a pack that does not load or
    compile, and :class:`~hitlgate.errors.ValidationError` for a malformed
    scenario file; test failures are in the returned report (with the full
    ``opa test -v`` trace only when ``verbose``).
    """
    pack = load_pack(config)
    if rego_tests:
        opa_check(config.policy_dir, opa)
    if config.backend.kind == "embedded":
        regopy_compile(pack)
    rego = run_rego_tests(config.policy_dir, opa, verbose=verbose) if rego_tests else None
    scenarios = load_scenarios([config.scenario_dir], limits=config.limits)
    # The report names every failing case with its reason, so the decider
    # does not also log each one.
    decider = Decider.from_config(config, log_failures=False)
    try:
        result = run_scenarios(decider, scenarios)
    finally:
        decider.close()
    return PolicyTestReport(backend=decider.backend.name, rego=rego, scenarios=result)

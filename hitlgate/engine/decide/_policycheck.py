"""``hitlgate policy check``: every check a policy change must pass, each failure reported, none stopping the rest.

Where ``policy test`` stops at the first stage that fails (one root cause,
one report), CI wants the whole list at once, each problem with its file
and line, so the architect fixes them in one round. The steps, in order:

1. **data**: the inventory files validate (schema, cross-references,
   approvers' keys parse, no key registered twice) and the scenario files
   load; each problem names file and line.
2. **compile and lint**: ``opa check --strict`` (the judge of valid Rego
   v1), ``opa fmt --list`` (a module ``opa fmt`` would rewrite), the
   embedded engine's compile (regopy), and the subset lint (constructs the
   two engines evaluate differently). A pack only one engine accepts is an
   error of its own. Regal runs when a ``regal`` binary is found
   (``$HITLGATE_REGAL``, ``PATH``, or the cache next to OPA's); otherwise
   one note says so.
3. **tests**: ``opa test`` (a directory without tests, or with no test
   rules, fails), its coverage against the threshold
   (``--coverage-threshold``, default ``policy_check.coverage_threshold`` in
   ``hitlgate.yaml``), and the scenario corpus on both engines: the embedded
   one and a real OPA server serving the pack's bundle. The two engines'
   decisions on the corpus must also be identical; an empty corpus fails.

A step whose input is broken is *skipped* rather than failed again (no
scenario runs on an inventory that does not load), so each root cause is
reported once. Environment problems (no OPA binary, OPA cannot run) raise
:class:`~hitlgate.errors.InputError` with a stable code: the CLI exits 2.

The decision diff (``--base``) lives in :mod:`hitlgate.engine.decide._policydiff`;
the formats in :mod:`hitlgate.engine.decide._policyreport`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess  # noqa: S404 - runs the OPA and Regal binaries with fixed arguments, no shell.
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hitlgate.engine.config import BackendConfig, Config
from hitlgate.engine.decide._locate import display_path, locate_inventory_problem
from hitlgate.engine.decide._opabin import cache_root
from hitlgate.engine.decide._regoscan import scan
from hitlgate.errors import BackendUnavailable, HitlgateError, InputError, PolicyError, ValidationError

if TYPE_CHECKING:
    from hitlgate.engine.decide.decider import Decider

#: Built-ins that regopy 1.5.2 lacks or evaluates differently from OPA 1.22.3 (each difference was
#: reproduced against both engines); a pack that calls one may decide differently on each engine.
DIVERGENT_BUILTINS: dict[str, str] = {
    "net.cidr_contains": "missing in regopy",
    "time.parse_rfc3339_ns": "missing in regopy",
    "json.match_schema": "missing or broken in regopy",
    "http.send": "missing in regopy",
    "glob.match": "a false result reads as undefined in regopy",
    "object.union": "regopy does not merge nested objects (OPA merges recursively)",
    "upper": "regopy only changes ASCII letters",
    "lower": "regopy only changes ASCII letters",
    "sprintf": "regopy quotes a %s argument that comes from a concat rule value",
}

_WHERE = re.compile(r"^(?P<file>[^\s:][^:]*?):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<message>.*)$", re.S)


@dataclass(frozen=True)
class Finding:
    """One problem (or note) a step found, at a place in a file when it has one."""

    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    #: ``error`` fails the step; ``warning`` and ``note`` inform.
    level: str = "error"

    @property
    def where(self) -> str:
        """``file:line:col`` (as much of it as is known), or ""."""
        if not self.file:
            return ""
        return self.file + (f":{self.line}" if self.line else "") + (f":{self.col}" if self.line and self.col else "")

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"level": self.level, "message": self.message, "file": self.file, "line": self.line, "col": self.col}

    @classmethod
    def parse(cls, text: str, level: str = "error") -> Finding:
        """A finding from ``file:line[:col]: message`` (the form every loader here names a place in)."""
        m = _WHERE.match(text)
        if m is None:
            return cls(text, level=level)
        col = m.group("col")
        return cls(m.group("message"), m.group("file"), int(m.group("line")), int(col) if col else None, level)


@dataclass
class Step:
    """One check: its outcome, a one-line summary and what it found."""

    id: str
    title: str
    status: str = "passed"  # passed | failed | skipped | note
    summary: str = ""
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    def fail(self, *findings: Finding, summary: str | None = None) -> None:
        """Mark the step failed with these findings."""
        self.status = "failed"
        self.findings.extend(findings)
        if summary is not None:
            self.summary = summary

    def skip(self, why: str) -> None:
        """Mark the step skipped (its input is broken, reported by an earlier step)."""
        self.status, self.summary = "skipped", why

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"id": self.id, "title": self.title, "status": self.status, "summary": self.summary,
                "seconds": round(self.seconds, 3), "findings": [f.to_dict() for f in self.findings]}


@dataclass
class CheckReport:
    """Everything ``policy check`` found (non-raising; the CLI turns it into a format and an exit code)."""

    policy_dir: str
    steps: list[Step] = field(default_factory=list)
    #: The decision diff against ``--base``, when asked for (a :class:`~hitlgate.engine.decide._policydiff.DiffReport`).
    diff: Any = None
    #: The git work tree's top: SARIF and GitHub annotations name files relative to it (None: to the cwd).
    repo_root: str | None = None

    @property
    def failed_steps(self) -> list[Step]:
        """The steps that failed."""
        return [s for s in self.steps if s.status == "failed"]

    @property
    def checks_ok(self) -> bool:
        """Whether every check passed (the diff aside)."""
        return not self.failed_steps

    @property
    def ok(self) -> bool:
        """Whether every check passed and the diff holds no change ``--fail-on`` forbids."""
        return self.checks_ok and (self.diff is None or not self.diff.forbidden)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the ``--format json`` document)."""
        return {
            "ok": self.ok,
            "checks_ok": self.checks_ok,
            "policy": self.policy_dir,
            "steps": [s.to_dict() for s in self.steps],
            "diff": self.diff.to_dict() if self.diff is not None else None,
        }


# -- binaries ---------------------------------------------------------------------


def require_opa(command: str = "check") -> Path:
    """The OPA binary, or InputError ``opa_missing`` naming ``hitlgate policy COMMAND`` (exit 2)."""
    from hitlgate.engine.decide._policytest import find_opa

    env = os.environ.get("HITLGATE_OPA")
    opa = find_opa()
    if opa is None or not opa.is_file():
        where = (f"$HITLGATE_OPA points at {env}, which is not a file; fix or unset it, or "
                 if env else "")
        raise InputError(
            f"hitlgate policy {command} needs the opa binary: {where}run `hitlgate opa install` "
            "(or scripts/install-opa), or put opa on PATH or in $HITLGATE_OPA",
            code="opa_missing",
        )
    return opa


def regal_candidates() -> list[Path]:
    """Where a Regal binary is looked for after ``$HITLGATE_REGAL`` and PATH, in order.

    ``go install github.com/open-policy-agent/regal@latest`` puts it in ``$GOBIN``, else ``$GOPATH/bin``,
    else ``~/go/bin``; ``<cache>/regal/bin/regal`` (``~/.cache/hitlgate``) is for a copy placed by hand.
    """
    out = []
    if os.environ.get("GOBIN"):
        out.append(Path(os.environ["GOBIN"]) / "regal")
    for gopath in (os.environ.get("GOPATH") or "").split(os.pathsep):
        if gopath:
            out.append(Path(gopath) / "bin" / "regal")
    out.append(Path.home() / "go" / "bin" / "regal")
    out.append(cache_root() / "regal" / "bin" / "regal")
    return out


def find_regal() -> Path | None:
    """A Regal binary: ``$HITLGATE_REGAL``, ``regal`` on PATH, then :func:`regal_candidates`; or None."""
    env = os.environ.get("HITLGATE_REGAL")
    if env:
        return Path(env) if Path(env).is_file() else None
    found = shutil.which("regal")
    if found:
        return Path(found)
    return next((p for p in regal_candidates() if p.is_file()), None)


def run_tool(argv: Sequence[str], timeout: float = 120.0, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # noqa: S603 - fixed argv, no shell.
            list(argv), capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout,
            check=False, cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolTimeoutError(f"{Path(argv[0]).name} {argv[1] if len(argv) > 1 else ''} did not finish within "
                          f"{timeout:g}s", code="tool_timeout") from exc
    except OSError as exc:
        raise InputError(f"could not run {argv[0]}: {exc}", code="tool_not_runnable") from exc


class ToolTimeoutError(InputError):
    """An OPA or Regal run that did not finish in time: ``policy check`` fails that check, not the run."""


#: Step id and title of each check that runs a tool, for the failed step a :class:`ToolTimeoutError` becomes.
_TOOL_STEPS = {"check_opa": ("opa-check", "opa check --strict"), "check_fmt": ("opa-fmt", "opa fmt --list"),
               "check_regal": ("regal", "regal lint"), "check_rego_tests": ("opa-test", "opa test"),
               "check_coverage": ("coverage", "test coverage")}


# -- 1. data ----------------------------------------------------------------------


def check_data(config: Config) -> Step:
    """Every inventory file validates and resolves; every scenario file loads."""
    from hitlgate.engine.decide.inventory import inventory_files, load_inventory
    from hitlgate.engine.decide.scenarios import load_scenarios

    step = Step("data", "inventory and scenario files")
    if config.inventory_source == "database":
        step.findings.append(Finding("the inventory lives in the state database (inventory.source: database); "
                                     "policy check validates inventory files only", level="note"))
    else:
        try:
            inventory = load_inventory(config.data_paths, limits=config.limits)
        except ValidationError as exc:
            try:
                files = inventory_files(config.data_paths)
            except PolicyError:
                files = []
            step.fail(*(Finding.parse(locate_inventory_problem(p, files)) for p in exc.problems))
        except PolicyError as exc:
            step.fail(Finding(str(exc)))
        else:
            counts = {s: len(inventory.document.get(s) or {}) for s in ("identities", "workloads", "approvers")}
            step.summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    try:
        scenarios = load_scenarios([config.scenario_dir], limits=config.limits)
    except ValidationError as exc:
        files = sorted(Path(config.scenario_dir).glob("*.y*ml")) if Path(config.scenario_dir).is_dir() else []
        step.fail(*(Finding.parse(_scenario_place(p, files)) for p in exc.problems))
    except PolicyError as exc:
        step.fail(Finding(str(exc)))
    else:
        step.summary = ", ".join(x for x in (step.summary, f"{len(scenarios)} scenarios") if x)
    if step.status == "failed":
        step.summary = f"{len(step.findings)} problem(s)"
    return step


def _scenario_place(problem: str, files: Sequence[Path]) -> str:
    """``file:line: message`` for a scenario problem that names ``file.yaml: cases[i]...``."""
    head, sep, rest = problem.partition(": ")
    match = [f for f in files if f.name == head]
    if not sep or not match:
        return problem
    path = rest.split(":", 1)[0].split(".")[0]
    located = locate_inventory_problem(f"{head}: {path}: {rest[len(path) + 2:] or rest}", match)
    return located if located != problem else f"{display_path(match[0])}: {rest}"


# -- 2. compile and lint ----------------------------------------------------------


def _rego_files(policy_dir: Path) -> tuple[list[Path], list[Path]]:
    from hitlgate.engine.decide.policy import policy_files, test_files

    if not Path(policy_dir).is_dir():
        return [], []
    return policy_files(policy_dir), test_files(policy_dir)


def check_opa(config: Config, opa: Path) -> Step:
    """``opa check --strict`` on the modules and their tests."""
    from hitlgate.engine.decide._rego_errors import from_opa_check

    step = Step("opa-check", "opa check --strict")
    modules, tests = _rego_files(config.policy_dir)
    if not modules:
        step.fail(Finding(f"no .rego policy modules in {display_path(config.policy_dir)}"), summary="no modules")
        return step
    run = run_tool([str(opa), "check", "--strict", "--format", "json", "--", *map(str, modules + tests)])
    if run.returncode == 0:
        step.summary = f"{len(modules)} module(s), {len(tests)} test file(s)"
        return step
    problems = from_opa_check(run.stderr) or from_opa_check(run.stdout)
    if not problems:
        step.fail(Finding((run.stdout + run.stderr).strip() or f"exit code {run.returncode}"), summary="failed")
        return step
    step.fail(*(Finding(f"{p.code}: {p.message}" if p.code else p.message, display_path(Path(p.file)), p.line, p.col)
                for p in problems), summary=f"{len(problems)} error(s)")
    return step


def check_fmt(config: Config, opa: Path) -> Step:
    """``opa fmt --list``: every module and test file is formatted as ``opa fmt`` writes it."""
    step = Step("opa-fmt", "opa fmt --list")
    modules, tests = _rego_files(config.policy_dir)
    if not modules and not tests:
        step.skip("no .rego files")
        return step
    run = run_tool([str(opa), "fmt", "--list", "--", *map(str, modules + tests)])
    if run.returncode != 0 and not run.stdout.strip():
        # A file opa cannot parse: opa check reports it with its place.
        step.skip("opa fmt could not parse every file (see opa check)")
        return step
    listed = [line.strip() for line in run.stdout.splitlines() if line.strip()]
    for name in listed:
        step.findings.append(Finding(
            "not formatted as `opa fmt` writes it; run `hitlgate policy fmt --write`", display_path(Path(name)), 1,
        ))
    if listed:
        step.status, step.summary = "failed", f"{len(listed)} file(s) need formatting"
    else:
        step.summary = f"{len(modules) + len(tests)} file(s) formatted"
    return step


def encoding_findings(files: Sequence[Path]) -> list[Finding]:
    """A ``bad_encoding`` finding, with its line, for each file that is not UTF-8 (Rego source must be)."""
    out = []
    for f in files:
        try:
            data = f.read_bytes()
        except OSError:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            out.append(Finding(f"bad_encoding: not UTF-8 (byte 0x{data[exc.start]:02x}); Rego source must be UTF-8",
                               display_path(f), line))
    return out


def check_regopy(config: Config) -> Step:
    """The embedded engine (regopy) compiles the modules."""
    from hitlgate.engine.decide._regopy import compile_pack
    from hitlgate.engine.decide.policy import PolicyModules

    step = Step("regopy", "embedded engine compiles the pack (regopy)")
    bad = encoding_findings(_rego_files(config.policy_dir)[0])
    if bad:
        step.fail(*bad, summary=f"{len(bad)} file(s) not UTF-8")
        return step
    try:
        modules = PolicyModules.load(config.policy_dir)
        compile_pack(modules)
    except PolicyError as exc:
        problems = getattr(exc, "rego_problems", None)
        if problems:
            step.fail(*(Finding(p.message, p.file, p.line, p.col) for p in problems),
                      summary=f"{len(problems)} error(s)")
        else:
            step.fail(Finding(str(exc)), summary="does not compile")
    else:
        step.summary = f"{len(modules.modules)} module(s) compile"
    return step


def check_engines_agree(opa_step: Step, regopy_step: Step) -> Step:
    """A pack only one of the two engines accepts is an error of its own."""
    step = Step("engines", "both engines accept the pack")
    if opa_step.status == "failed" and regopy_step.status == "passed":
        step.fail(Finding("only regopy accepts the pack: OPA refuses it (see opa check), so the OPA backend "
                          "would fail closed on every decision"), summary="only the embedded engine accepts it")
    elif regopy_step.status == "failed" and opa_step.status == "passed":
        step.fail(Finding("only OPA accepts the pack: the embedded engine (regopy) refuses it (see above), so "
                          "embedded decisions would fail closed"), summary="only OPA accepts it")
    elif regopy_step.status == "failed":
        step.skip("neither engine accepts the pack (see above)")
    else:
        step.summary = "OPA and regopy both compile it"
    return step


_WITH = re.compile(r"(?<![\w.])with\s+(?:input|data)\b")


def subset_findings(files: Sequence[Path]) -> list[Finding]:
    """Constructs in these modules that regopy and OPA evaluate differently, each with file:line:col."""
    patterns = [
        (re.compile(r"(?<![\w.])" + re.escape(name) + r"\s*\("), f"{name}(): {why}; the engines may decide differently")
        for name, why in DIVERGENT_BUILTINS.items()
    ]
    patterns.append((_WITH, "`with` is not implemented by regopy (it works only in *_test.rego files, run by OPA)"))
    found: list[Finding] = []
    for f in files:
        try:
            source = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        code = scan(source).code
        for pattern, message in patterns:
            for m in pattern.finditer(code):
                line = code.count("\n", 0, m.start()) + 1
                col = m.start() - (code.rfind("\n", 0, m.start()) + 1) + 1
                found.append(Finding(message, display_path(f), line, col))
    return sorted(found, key=lambda x: (x.file or "", x.line or 0, x.col or 0))


def check_subset(config: Config) -> Step:
    """The subset lint: the pack avoids what the two engines evaluate differently."""
    step = Step("subset", "inside the Rego subset both engines evaluate identically")
    modules, _ = _rego_files(config.policy_dir)
    found = subset_findings(modules)
    if found:
        step.fail(*found, summary=f"{len(found)} construct(s) outside the subset")
    else:
        step.summary = f"{len(modules)} module(s) clean"
    return step


def check_regal(config: Config) -> Step:
    """``regal lint`` when a Regal binary is found; otherwise one note that it is not available."""
    step = Step("regal", "regal lint")
    regal = find_regal()
    if regal is None:
        step.status = "note"
        # No absolute home path: this text lands in a pull-request comment.
        step.summary = ("regal: not available (no regal binary in $HITLGATE_REGAL, on PATH, in $GOBIN, "
                        "$GOPATH/bin or ~/go/bin, or in ~/.cache/hitlgate/regal/bin); `go install "
                        "github.com/open-policy-agent/regal@latest` installs one in $GOBIN or ~/go/bin")
        return step
    run = run_tool([str(regal), "lint", "--format", "json", str(config.policy_dir)])
    try:
        doc = json.loads(run.stdout)
    except ValueError:
        step.fail(Finding((run.stdout + run.stderr).strip()[:500] or f"regal exited {run.returncode}"),
                  summary="regal failed")
        return step
    for v in doc.get("violations") or []:
        loc = v.get("location") or {}
        level = "error" if v.get("level", "error") == "error" else "warning"
        step.findings.append(Finding(
            f"{v.get('category', '')}/{v.get('title', '')}: {v.get('description', '')}".strip("/: "),
            display_path(Path(str(loc.get("file", "")))) if loc.get("file") else None,
            loc.get("row"), loc.get("col"), level,
        ))
    errors = [f for f in step.findings if f.level == "error"]
    step.status = "failed" if errors else "passed"
    step.summary = f"{len(errors)} violation(s), {len(step.findings) - len(errors)} warning(s)"
    return step


# -- 3. tests ---------------------------------------------------------------------


def check_rego_tests(config: Config, opa: Path) -> Step:
    """``opa test``: every unit test passes, and there are tests to run."""
    from hitlgate.engine.decide._policytest import run_rego_tests

    step = Step("opa-test", "opa test")
    modules, tests = _rego_files(config.policy_dir)
    if not tests:
        step.fail(Finding(f"no *_test.rego files in {display_path(config.policy_dir)}: a pack without unit tests "
                          "fails the check"), summary="no tests")
        return step
    try:
        result = run_rego_tests(config.policy_dir, opa)
    except BackendUnavailable as exc:
        # opa test that does not finish (or dies) fails this check; the others still run.
        step.fail(Finding(str(exc)), summary="opa test did not run to the end")
        return step
    if result.tests == 0 and not result.failures:
        step.fail(Finding(f"the *_test.rego files in {display_path(config.policy_dir)} hold no test rules "
                          "(test_*): nothing ran"), summary="no tests")
        return step
    for f in result.failures:
        step.findings.append(Finding(f"{f.name}: {f.message}", f.file or None, f.line or None))
    if not result.ok:
        step.status = "failed"
        step.summary = f"{result.failed} of {result.tests} test(s) failed"
    else:
        step.summary = f"{result.tests} test(s) passed"
    return step


def check_coverage(config: Config, opa: Path, threshold: float) -> Step:
    """``opa test --coverage``: the modules' coverage is at least ``threshold`` percent."""
    step = Step("coverage", f"test coverage >= {threshold:g}%")
    modules, tests = _rego_files(config.policy_dir)
    if not tests:
        step.skip("no tests (see opa test)")
        return step
    run = run_tool([str(opa), "test", "--coverage", "--format", "json", "--", *map(str, modules + tests)])
    try:
        doc = json.loads(run.stdout)
        files = doc["files"]
    except (ValueError, KeyError, TypeError):
        step.fail(Finding((run.stdout + run.stderr).strip()[:500] or f"opa exited {run.returncode}"),
                  summary="opa test --coverage failed")
        return step
    covered = uncovered = 0
    gaps: list[Finding] = []
    names = {str(p) for p in modules}
    for name, info in sorted(files.items()):
        # The tests' own coverage says nothing about the policy's.
        if name not in names:
            continue
        covered += int(info.get("covered_lines") or 0)
        uncovered += int(info.get("not_covered_lines") or 0)
        for r in info.get("not_covered") or []:
            gaps.append(Finding("not covered by any test", display_path(Path(name)), r["start"]["row"], level="note"))
    total = covered + uncovered
    percent = 100.0 * covered / total if total else 0.0
    step.summary = f"{percent:.1f}% of {total} line(s) covered (threshold {threshold:g}%)"
    if percent < threshold:
        step.fail(Finding(f"coverage {percent:.1f}% is below the threshold of {threshold:g}% "
                          f"({uncovered} line(s) not covered)"), *gaps[:50])
        step.summary = f"{percent:.1f}% < {threshold:g}%"
    return step


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def opa_server(opa: Path, pack: Any, timeout: float = 30.0) -> Iterator[str]:
    """A real ``opa run --server`` on a free loopback port serving ``pack``'s bundle; yields its URL."""
    import requests

    from hitlgate.engine.decide._bundle import write_bundle

    with tempfile.TemporaryDirectory(prefix="hitlgate-check-") as tmp:
        bundle = write_bundle(pack, Path(tmp) / "bundle.tar.gz")
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = (Path(tmp) / "opa.log").open("wb")
        try:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv.
                [str(opa), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error",
                 "--bundle", str(bundle)], stdout=log, stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            log.close()
            raise InputError(f"could not start {opa}: {exc}", code="tool_not_runnable") from exc
        try:
            deadline = time.monotonic() + timeout
            with requests.Session() as session:
                while True:
                    if proc.poll() is not None:
                        log.flush()
                        text = (Path(tmp) / "opa.log").read_text(errors="replace")[-500:]
                        raise InputError(f"opa exited with {proc.returncode}: {text}", code="tool_not_runnable")
                    try:
                        if session.get(f"{url}/health?bundles", timeout=0.5).status_code == 200:
                            break
                    except requests.RequestException:
                        pass
                    if time.monotonic() > deadline:
                        raise InputError(f"opa did not become healthy within {timeout:g}s", code="tool_not_runnable")
                    time.sleep(0.05)
            yield url
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            log.close()


def _scenario_findings(report: Any, scenario_dir: Path, engine: str) -> list[Finding]:
    out = []
    for f in report.failed:
        s = f.scenario
        where = Finding.parse(_scenario_place(f"{s.source}: cases[{s.index}]: x", _scenario_files(scenario_dir)))
        out.append(Finding(f"{s.name}: {'; '.join(f.problems)} ({engine})", where.file, where.line))
    return out


def _scenario_files(scenario_dir: Path) -> list[Path]:
    d = Path(scenario_dir)
    return sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml")) if d.is_dir() else []


def check_scenarios(config: Config, opa: Path, *, data_ok: bool, regopy_ok: bool, opa_ok: bool) -> list[Step]:
    """The scenario corpus on the embedded engine and on a real OPA server, and the two engines agree."""
    from hitlgate.engine.decide._opa import OpaBackend
    from hitlgate.engine.decide.decider import Decider
    from hitlgate.engine.decide.policy import PolicyPack
    from hitlgate.engine.decide.scenarios import load_scenarios

    embedded = Step("scenarios-embedded", "scenario corpus on the embedded engine")
    served = Step("scenarios-opa", "scenario corpus on OPA")
    agree = Step("scenarios-agree", "both engines decide the corpus identically")
    steps = [embedded, served, agree]
    if not data_ok:
        for step in steps:
            step.skip("the inventory or a scenario file does not load (see data)")
        return steps
    scenarios = load_scenarios([config.scenario_dir], limits=config.limits)
    if not scenarios:
        finding = Finding(f"no scenarios in {display_path(config.scenario_dir)}: an empty corpus fails the check")
        embedded.fail(finding, summary="no scenarios")
        served.skip("no scenarios")
        agree.skip("no scenarios")
        return steps
    local = dataclasses.replace(config, backend=BackendConfig(kind="embedded", decision_cache=0))
    decisions: dict[str, list[dict[str, Any]]] = {}
    if regopy_ok:
        report, decisions["embedded"] = _run_corpus(Decider.from_config(local, log_failures=False), scenarios)
        _scenario_outcome(embedded, report, config.scenario_dir, "embedded")
    else:
        embedded.skip("the embedded engine does not compile the pack (see regopy)")
    if opa_ok:
        pack = PolicyPack.load(config.policy_dir, config.data_paths, limits=config.limits)
        with opa_server(opa, pack) as url:
            report, decisions["opa"] = _run_corpus(
                Decider(OpaBackend(url, pack=pack, timeout_ms=10_000), risk_factors=config.risk_factors,
                        log_failures=False), scenarios)
        _scenario_outcome(served, report, config.scenario_dir, "opa")
    else:
        served.skip("OPA does not accept the pack (see opa check)")
    if len(decisions) == 2:
        for s, a, b in zip(scenarios, decisions["embedded"], decisions["opa"], strict=True):
            if a != b:
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                where = Finding.parse(_scenario_place(f"{s.source}: cases[{s.index}]: x",
                                                      _scenario_files(config.scenario_dir)))
                agree.fail(Finding(f"{s.name}: regopy and OPA disagree on {', '.join(keys)}", where.file, where.line))
        agree.summary = (f"{len(agree.findings)} case(s) differ" if agree.findings
                         else f"{len(scenarios)} identical decisions")
    else:
        agree.skip("needs both engines")
    return steps


def _run_corpus(decider: Decider, scenarios: list[Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Run the corpus on ``decider`` (closed afterwards): its report, and each case's decision for the comparison."""
    from hitlgate.engine.decide.scenarios import run_scenarios

    try:
        return run_scenarios(decider, scenarios), [decider.decide_validated(s.proposal).to_dict() for s in scenarios]
    finally:
        decider.close()


def _scenario_outcome(step: Step, report: Any, scenario_dir: Path, engine: str) -> None:
    if report.failed:
        step.fail(*_scenario_findings(report, scenario_dir, engine),
                  summary=f"{len(report.failed)} of {len(report.failed) + len(report.passed)} case(s) failed")
    else:
        step.summary = f"{len(report.passed)} case(s) passed"


# -- all of it --------------------------------------------------------------------


def run_checks(config: Config, *, coverage_threshold: float | None = None) -> CheckReport:
    """Run every check on the pack ``config`` names; raise only for environment errors (exit 2)."""
    opa = require_opa()
    threshold = config.coverage_threshold if coverage_threshold is None else coverage_threshold
    report = CheckReport(policy_dir=display_path(config.policy_dir))

    def timed(fn: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except ToolTimeoutError as exc:
            sid, title = _TOOL_STEPS.get(fn.__name__, (fn.__name__, fn.__name__))
            result = Step(sid, title)
            result.fail(Finding(str(exc)), summary="timed out")
        steps = result if isinstance(result, list) else [result]
        for s in steps:
            # Steps run together (the corpus on both engines) share their time.
            s.seconds = (time.perf_counter() - start) / len(steps)
            report.steps.append(s)
        return result

    data = timed(check_data, config)
    opa_step = timed(check_opa, config, opa)
    timed(check_fmt, config, opa)
    regopy_step = timed(check_regopy, config)
    timed(check_engines_agree, opa_step, regopy_step)
    timed(check_subset, config)
    timed(check_regal, config)
    if opa_step.status == "failed":
        for sid, title in (("opa-test", "opa test"), ("coverage", f"test coverage >= {threshold:g}%")):
            skipped = Step(sid, title)
            skipped.skip("the pack does not compile (see opa check)")
            report.steps.append(skipped)
    else:
        tests_step = timed(check_rego_tests, config, opa)
        if tests_step.status == "failed":
            # A failing test is one root cause: coverage of a failing run would report it a second time.
            skipped = Step("coverage", f"test coverage >= {threshold:g}%")
            skipped.skip("the unit tests fail (see opa test)")
            report.steps.append(skipped)
        else:
            timed(check_coverage, config, opa, threshold)
    try:
        timed(check_scenarios, config, opa, data_ok=data.status != "failed",
              regopy_ok=regopy_step.status != "failed", opa_ok=opa_step.status != "failed")
    except HitlgateError as exc:
        if isinstance(exc, InputError) and exc.code in ("tool_not_runnable", "opa_missing"):
            raise
        failed = Step("scenarios-embedded", "scenario corpus")
        failed.fail(Finding(str(exc)), summary="could not run")
        report.steps.append(failed)
    return report

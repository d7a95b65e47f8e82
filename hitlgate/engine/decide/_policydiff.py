"""The decision diff of ``hitlgate policy check --base REF``: which decisions a change makes looser or stricter.

The base project is the same project at a git ref, checked out in a
temporary ``git worktree`` (removed afterwards). Both sides decide the
same proposals with the embedded engine through the same path as real
decisions (a :class:`~hitlgate.engine.decide.decider.Decider` on each side's
configuration, facts looked up in each side's inventory), from three
sources:

(a) the scenario corpus of both sides;
(b) a replay file: ``hitlgate audit export`` output (its ``proposed``
    events) or JSON Lines of proposals, so last month's real decisions are
    replayed;
(c) the sweep: every inventory target of either side x every action type
    of the catalogue x every requester kind. The whole catalogue, not only
    the actions a pack deems applicable: whether an action applies to a
    target is itself a decision of the pack (``action_not_applicable``),
    and a change that makes one apply is a loosening.

The sweep holds every other proposal field fixed (justification, requester
id, parameters, incident, confidence, evidence). When the modules change,
it also sets ``justification``, ``requester.id`` and ``incident`` to each
string literal the modules compare them against (:func:`field_literals`);
a field either side reads in any other way makes the diff *incomplete*, a
failing check of its own (``diff-complete``) unless ``--fail-on never``.
It also sweeps *unknown targets* (:func:`unknown_targets`): one id in no
inventory section, and, when the modules change, ids made from each string
literal of either side (the literal, with a suffix, with a prefix), at
most :data:`MAX_UNKNOWN_TARGETS` of them; ids the cap leaves out, and a test
on the target id such ids cannot exercise
(:func:`~hitlgate.engine.decide._regoscan.target_tests`), make the diff
incomplete too. A nondeterministic builtin the head calls and the base
does not fails ``diff-deterministic`` unless ``--fail-on never``: a rule
keyed on the clock can loosen decisions later, where no diff sees it.
A target absent from the base inventory is a *new target*: the base failed
closed on it, so its decisions form a group of their own that only
``--fail-on any-change`` forbids.

A decision *changes* when its tier, risk factors, quorum, approval window
or warrant lifetime differ (reasons, controls and blast radius are wording
and context). Each change is classified: **loosening** (a lower tier, a
smaller quorum, a slot dropped or widened, a longer warrant lifetime),
**tightening** (the reverse), **changed** (a quorum that is neither:
--fail-on loosening treats it as a loosening, since it may be one) or
**neutral** (factors or approval window alone). Identical changes are
grouped ("37 proposals on 12 targets: single_approval -> auto_allow because
production_credential no longer applies"), and the cause is named: the
policy, the inventory (the target's facts differ), or both.

Speed: each side evaluates each *distinct* proposal once. Two proposals
are the same to a side when they agree on every proposal field its modules
could read (:func:`proposal_fields_read`, a conservative reading of the
module text like :func:`~hitlgate.engine.decide._regoscan.inventory_sections_read`:
a field counts as read when its name occurs anywhere in the code or a
string, or when its parent is used whole). When both sides run the same
modules on a deterministic pack, a proposal whose target's facts are the
same on both sides is not evaluated at all: its decision cannot differ.
What is left is evaluated in one worker process per CPU when there are
thousands of proposals (each builds both sides once), else on a thread
pool (regopy releases the GIL while it evaluates; each thread compiles its
own interpreter).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import re
import shlex
import shutil
import stat
import subprocess  # noqa: S404 - runs git with fixed arguments, no shell.
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitlgate.engine._safeparse import parse_json_line, shorten
from hitlgate.engine.config import BackendConfig, Config
from hitlgate.engine.decide._locate import display_path
from hitlgate.engine.decide._regoscan import (
    SIDE_EFFECT_CALLS,
    inventory_sections_read,
    nondeterministic_calls,
    scan,
    target_tests,
)
from hitlgate.engine.decide.decision import TIER_RANK
from hitlgate.errors import HitlgateError, InputError, ValidationError

#: The requester kinds of the proposal schema swept for every target.
REQUESTER_KINDS = ("agent", "human", "service")
#: Who the sweep's proposals say they come from (never stored, never executed).
SWEEP_REQUESTER = "hitlgate-policy-check"
SWEEP_JUSTIFICATION = "hitlgate policy check: decision sweep (never executed)"

#: Proposal fields beyond action.type and action.target that a pack may or may not read.
OPTIONAL_FIELDS = ("action.parameters", "requester.id", "requester.kind", "justification", "incident",
                   "confidence", "evidence")

#: Proposal fields the sweep holds fixed or leaves out: a pack that keys a decision on one of them can change
#: decisions the sweep never makes.
UNVARIED_FIELDS = ("action.parameters", "requester.id", "justification", "incident", "confidence", "evidence")
#: The string fields the sweep also sets to each literal the modules compare them against.
LITERAL_FIELDS = ("justification", "requester.id", "incident")
#: Literals per field the sweep tries (each one multiplies the sweep).
_MAX_LITERALS = 8

#: The unknown target every sweep tries: an id in no inventory section of either side (a suffix is added on a
#: collision).
UNKNOWN_TARGET = "hitlgate-unknown-target"
#: What the ids derived from a literal ``L`` add to it: ``L`` itself, ``L`` + suffix and prefix + ``L``, so an
#: equality, ``startswith``, ``endswith`` or ``contains`` test on the target id meets an id that passes it and
#: one that passes only the looser tests.
UNKNOWN_PREFIX = "hitlgate-unknown-"
UNKNOWN_SUFFIX = "-hitlgate-unknown"
#: Literal-derived unknown targets the sweep tries (each one adds action types x requester kinds proposals). The
#: bundled pack's literals fit, with room for a change's own.
MAX_UNKNOWN_TARGETS = 240
#: What a proposal's target may be (the proposal schema's ``id``); a literal that cannot be one is skipped.
_TARGET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}")

#: Proposals evaluated per task on the thread pool.
_BATCH = 256
#: Problems with replay lines shown (the rest are counted).
_SHOWN_PROBLEMS = 5

FAIL_ON = ("loosening", "any-change", "never")


# -- what a pack reads of a proposal ---------------------------------------------------


def proposal_fields_read(sources: Sequence[str]) -> frozenset[str] | None:
    """The fields of :data:`OPTIONAL_FIELDS` the modules may read, or None when they may read any.

    Conservative: ``input`` used whole (bound, iterated, indexed by a
    variable or a string, passed to a function) means every field; a parent
    used whole (``input.requester[k]``, ``input.requester["id"]``,
    ``walk(input.action, ...)``) means every child; otherwise a field is read
    when its name occurs as a word anywhere in the code (comments and string
    literals removed). A string literal alone never reads a field: using it
    as a key needs its parent (or the input) used whole, which already
    counts every child.
    """
    scanned = [scan(src) for src in sources]
    whole = re.compile(r"\binput\b(?!\s*\.\s*[A-Za-z_])")
    if any(whole.search(s.code) for s in scanned):
        return None
    read = set()
    for path in OPTIONAL_FIELDS:
        parent, _, child = path.rpartition(".")
        word = re.compile(rf"\b{child}\b")
        if any(word.search(s.code) for s in scanned):
            read.add(path)
        elif parent and any(re.search(rf"\b{parent}\b(?!\s*\.\s*[A-Za-z_])", s.code) for s in scanned):
            read.add(path)
    return frozenset(read)


def field_literals(sources: Sequence[str]) -> tuple[dict[str, list[str]], frozenset[str]]:
    """The string literals the modules compare each of :data:`LITERAL_FIELDS` against, and the fields covered.

    Recognised comparisons: ``contains``/``startswith``/``endswith(input.F, "lit")`` and ``input.F == "lit"``
    (either way round); a proposal whose field *is* the literal satisfies each of them. A field is covered
    when every occurrence of its name in the code is such a comparison: then the sweep, trying each literal,
    makes every decision the field can change. Any other use (a regex, a lookup, a second module reading
    it some other way) leaves it uncovered.
    """
    literals: dict[str, list[str]] = {}
    uses: Counter[str] = Counter()
    matched: Counter[str] = Counter()
    # Fields compared against more literals than the sweep tries are not covered.
    overflow: set[str] = set()
    for src in sources:
        scanned = scan(src)
        code = scanned.code
        # Each "" in the code is one string literal, in order (scan empties them).
        index = {m.start(): i for i, m in enumerate(re.finditer(r'""', code))}
        for path in LITERAL_FIELDS:
            child = path.rpartition(".")[2]
            uses[path] += len(re.findall(rf"\b{child}\b", code))
            ref = r"\binput\s*\.\s*" + r"\s*\.\s*".join(path.split("."))
            for pattern in (rf'\b(?:contains|startswith|endswith)\(\s*{ref}\s*,\s*(?P<lit>"")\s*\)',
                            rf'{ref}\s*==\s*(?P<lit>"")', rf'(?P<lit>"")\s*==\s*{ref}\b(?!\s*\.)'):
                for m in re.finditer(pattern, code):
                    matched[path] += 1
                    i = index.get(m.start("lit"))
                    value = scanned.strings[i] if i is not None and i < len(scanned.strings) else ""
                    try:
                        value = json.loads(f'"{value}"')
                    except ValueError:
                        continue
                    found = literals.setdefault(path, [])
                    if not value or value in found:
                        continue
                    if len(found) < _MAX_LITERALS:
                        found.append(value)
                    else:
                        overflow.add(path)
    covered = frozenset(p for p in LITERAL_FIELDS if uses[p] == matched[p] and p not in overflow)
    return literals, covered


def unvaried_reads(base_reads: frozenset[str] | None, head_reads: frozenset[str] | None,
                   covered: frozenset[str]) -> list[str]:
    """The fields of :data:`UNVARIED_FIELDS` either side reads that the sweep does not cover."""
    if base_reads is None or head_reads is None:
        return list(UNVARIED_FIELDS)
    return [f for f in UNVARIED_FIELDS if f in (base_reads | head_reads) and f not in covered]


def module_literals(sources: Sequence[str]) -> list[str]:
    """Every string literal of the modules, decoded, once each, in order of appearance."""
    out: dict[str, None] = {}
    for src in sources:
        for raw in scan(src).strings:
            try:
                value = json.loads(f'"{raw}"')
            except ValueError:
                value = raw  # A raw (backtick) string, or an escape JSON does not know: its text as written.
            out.setdefault(value, None)
    return list(out)


def unknown_targets(base_sources: Sequence[str], head_sources: Sequence[str],
                    known: Callable[[str], bool]) -> tuple[list[str], int]:
    """The unknown target ids the sweep tries, and how many literal-derived ones :data:`MAX_UNKNOWN_TARGETS` cut off.

    First :data:`UNKNOWN_TARGET`, then for each string literal ``L`` of either side's modules: ``L``,
    ``L`` + :data:`UNKNOWN_SUFFIX` and :data:`UNKNOWN_PREFIX` + ``L``, so a test of the target id against a
    literal (``startswith(target_id, "svc-")``, its ``endswith``, ``contains`` and ``==`` kin) meets an unknown id
    on each side of it. A literal only one side has (the change's own) comes first. ``known`` says whether
    an id is in either side's inventory: such an id is never used (a known target is swept as one).
    """
    base_literals, head_literals = module_literals(base_sources), module_literals(head_sources)
    both = set(base_literals) & set(head_literals)
    ordered = list(dict.fromkeys([*(x for x in [*head_literals, *base_literals] if x not in both),
                                  *(x for x in head_literals if x in both)]))
    first = UNKNOWN_TARGET
    n = 1
    while known(first):
        n += 1
        first = f"{UNKNOWN_TARGET}-{n}"
    out: list[str] = [first]
    seen = {first}
    cut = 0
    for literal in ordered:
        for candidate in (literal, literal + UNKNOWN_SUFFIX, UNKNOWN_PREFIX + literal):
            if candidate in seen or not _TARGET_ID.fullmatch(candidate) or known(candidate):
                continue
            seen.add(candidate)
            if len(out) > MAX_UNKNOWN_TARGETS:
                cut += 1
            else:
                out.append(candidate)
    return out, cut


def _projection(doc: Mapping[str, Any], reads: frozenset[str] | None) -> str:
    """The part of a proposal a side's modules can read, as a canonical string (the evaluation cache key)."""
    if reads is None:
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    action = doc.get("action") or {}
    requester = doc.get("requester") or {}
    out: dict[str, Any] = {"t": action.get("type"), "g": action.get("target")}
    for path in reads:
        parent, _, child = path.rpartition(".")
        source = action if parent == "action" else requester if parent == "requester" else doc
        if child in source:
            out[path] = source[child]
    return json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- git ---------------------------------------------------------------------------


def _git(args: Sequence[str], cwd: Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    git = shutil.which("git")
    if git is None:
        raise InputError("--base needs git on PATH", code="git_missing")
    try:
        return subprocess.run(  # noqa: S603 - fixed argv, no shell.
            [git, *args], cwd=cwd, capture_output=True, text=True, encoding="utf-8", errors="replace",
            timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"could not run git: {exc}", code="git_failed") from exc


def repository_root(start: Path) -> Path:
    """The top of the git work tree holding ``start``; InputError ``not_a_git_repository`` otherwise."""
    run = _git(["rev-parse", "--show-toplevel"], start)
    if run.returncode != 0:
        raise InputError(f"--base needs a git repository: {start} is not in one (the decision diff checks out "
                         "the base ref with git; commit the project to git first, e.g. `git init -b main && git add -A "
                         "&& git commit -m base`, or run policy check without --base)",
                         code="not_a_git_repository")
    return Path(run.stdout.strip()).resolve()


def resolve_ref(top: Path, ref: str) -> str:
    """The commit ``ref`` names, or InputError ``ref_not_found`` (exit 2)."""
    if not ref or ref.startswith("-"):
        raise InputError(f"--base {ref!r}: not a git ref", code="ref_not_found")
    run = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], top)
    if run.returncode != 0:
        # Only a branch-like name can be fetched; HEAD~1 in a one-commit repository cannot.
        branch = re.fullmatch(r"(?:origin/)?([A-Za-z0-9._-][A-Za-z0-9._/-]*)", ref)
        hint = ""
        if branch and ref.upper() != "HEAD" and not ref.endswith((".", "/", ".lock")):
            remotes = _git(["remote"], top).stdout.split()
            local = _git(["for-each-ref", "--format=%(refname:short)", "refs/heads"], top).stdout.split()
            if remotes:
                # upstream/x names branch x of the remote upstream; a bare name is fetched from the first remote.
                remote, name = next(((r, ref[len(r) + 1 :]) for r in remotes if ref.startswith(r + "/")),
                                    (remotes[0], branch.group(1)))
                hint = f" (fetch it first, e.g. git fetch {shlex.quote(remote)} {shlex.quote(name)})"
            elif local:
                # A repository made by `git init` names its first branch master or main, by git's configuration.
                hint = f" (this repository has no remote; its branches: {', '.join(local[:5])})"
        raise InputError(f"--base {shlex.quote(ref)}: no such commit in {top}{hint}", code="ref_not_found")
    return run.stdout.strip()


#: The lock reason of a base worktree: which process owns it, so a later run can tell a stale one.
_LOCK_REASON = "hitlgate policy check pid "


def _remove_stale_worktrees(top: Path) -> None:
    """Remove base worktrees a killed run left registered (their owning process is gone), then prune."""
    listed = _git(["worktree", "list", "--porcelain"], top)
    path: str | None = None
    for line in listed.stdout.splitlines():
        if line.startswith("worktree "):
            path = line[len("worktree "):]
        elif line.startswith("locked " + _LOCK_REASON) and path and Path(path).parent.name.startswith(
                "hitlgate-base-"):
            try:
                pid = int(line.rsplit(" ", 1)[1])
            except ValueError:
                continue
            if pid != os.getpid() and not _alive(pid):
                _drop_worktree(top, Path(path))
                shutil.rmtree(Path(path).parent, ignore_errors=True)
    _git(["worktree", "prune"], top)


def _drop_worktree(top: Path, path: Path) -> None:
    """Remove the worktree at ``path``; a half-made one (git killed mid-add) is unlocked so prune takes it."""
    if _git(["worktree", "remove", "--force", "--force", str(path)], top).returncode != 0:
        # prune never touches a locked worktree, and --lock is written before the checkout completes.
        _git(["worktree", "unlock", str(path)], top)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _sigterm_exits() -> Iterator[None]:
    """While the diff runs, SIGTERM raises SystemExit, so the ``finally`` that removes the worktree runs."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def base_worktree(top: Path, commit: str) -> Iterator[Path]:
    """A temporary ``git worktree`` of ``commit`` (detached, locked by this process), removed afterwards.

    The ``add`` itself runs inside the ``try``: an interrupt (SIGINT, or SIGTERM turned into SystemExit)
    during the checkout still removes the worktree and prunes its registration; a run killed outright
    leaves a locked worktree the next run removes (its owner's pid is gone).
    """
    _remove_stale_worktrees(top)
    tmp = Path(tempfile.mkdtemp(prefix="hitlgate-base-"))
    path = tmp / "base"
    try:
        # No hooks: a post-checkout hook has no business running for a throwaway checkout.
        # Locked only once it is complete: a registration git leaves when it is killed mid-add (no .git file
        # in the directory yet) cannot be removed or unlocked by path, and prune never takes a locked one.
        run = _git(["-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", "--quiet", str(path), commit],
                   top, timeout=300)
        if run.returncode != 0:
            raise InputError(f"git worktree add failed: {run.stderr.strip()[:300]}", code="git_failed")
        _git(["worktree", "lock", "--reason", f"{_LOCK_REASON}{os.getpid()}", str(path)], top)
        yield path
    finally:
        _drop_worktree(top, path)
        shutil.rmtree(tmp, ignore_errors=True)
        _git(["worktree", "prune"], top)


def base_config(head: Config, top: Path, worktree: Path) -> tuple[Config | None, list[str]]:
    """The base side's configuration: its own ``hitlgate.yaml`` at the same place, else the head's paths mapped."""
    notes: list[str] = []
    if head.source is not None:
        try:
            rel = head.source.resolve().relative_to(top)
        except ValueError:
            return None, [f"the configuration {head.source} is outside the repository {top}: no base to compare"]
        candidate = worktree / rel
        if not candidate.is_file():
            return None, [f"the base has no {rel}: every decision is new, nothing to compare"]
        config = Config.from_file(candidate)
    else:
        config = head

    def mapped(p: Path) -> Path:
        try:
            return worktree / Path(p).resolve().relative_to(top)
        except ValueError:
            notes.append(f"{p} is outside the repository: the base reads the same files as the head")
            return Path(p)

    if head.source is None:
        config = dataclasses.replace(
            config, policy_dir=mapped(config.policy_dir), data_paths=tuple(mapped(p) for p in config.data_paths),
            scenario_dir=mapped(config.scenario_dir), source=None,
        )
    else:
        for p in (config.policy_dir, *config.data_paths, config.scenario_dir):
            if worktree.resolve() not in Path(p).resolve().parents:
                notes.append(f"{p} is outside the repository: the base reads the same files as the head")
    return config, notes


# -- one side ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """The parts of a decision the diff compares (and the reason a fail-closed one gives)."""

    tier: str
    factors: tuple[str, ...]
    quorum: tuple[int, tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]]
    ttl: int
    fail_closed: str | None = None
    #: Seconds a warrant of this decision lives (the policy's per-tier value, else the configured
    #: default); 0 for a tier that gets no warrant.
    warrant_ttl: int = 0


class Side:
    """One project (base or head): a Decider on its configuration, and what its modules can read."""

    def __init__(self, name: str, config: Config) -> None:
        from hitlgate.engine.decide._regopy import RegopyBackend, compile_pack
        from hitlgate.engine.decide.decider import Decider
        from hitlgate.engine.decide.facts import FileFacts, facts_from_config
        from hitlgate.engine.decide.policy import PolicyModules

        self.name = name
        # The embedded engine, without its decision cache: the diff caches per distinct proposal itself.
        self.config = dataclasses.replace(config, backend=BackendConfig(kind="embedded", decision_cache=0))
        self.modules = PolicyModules.load(self.config.policy_dir)
        # A pack the embedded engine cannot compile would deny everything: that is a failed check, not a diff.
        compile_pack(self.modules)
        sources = [src for _, src in self.modules.modules]
        self.reads = proposal_fields_read(sources)
        self.sections = inventory_sections_read(sources)
        self.nondeterministic = nondeterministic_calls(sources)
        # The embedded backend as Decider.from_config builds it, except that neither the modules nor the
        # inventory files are watched: a checkout under comparison does not change, and checking every
        # file's mtime on each of tens of thousands of decisions costs more than some of them.
        cfg = self.config
        self._source = (FileFacts(cfg.data_paths, limits=cfg.limits, watch=False) if cfg.inventory_source == "files"
                        else facts_from_config(cfg))
        backend = RegopyBackend(cfg.policy_dir, list(cfg.data_paths), watch=False, limits=cfg.limits,
                                facts=self._source, decision_cache_size=0)
        self.decider = Decider(backend, risk_factors=cfg.risk_factors, log_failures=False)
        self.facts = self._source.current()
        self._hoods: dict[str, Any] = {}

    def key(self, doc: Mapping[str, Any]) -> str:
        """The evaluation cache key of a proposal on this side."""
        return _projection(doc, self.reads)

    def neighbourhood(self, target: str, sections: frozenset[str] | None) -> Any:
        """The facts this side's policy sees about ``target`` (cached)."""
        hood = self._hoods.get(target)
        if hood is None:
            hood = self.facts.snapshot(target, sections)[0]
            self._hoods[target] = hood
        return hood

    def targets(self) -> list[str] | None:
        """Every identity and workload id of this side's inventory files (None for a database inventory)."""
        from hitlgate.engine.decide.facts import FileFacts

        if not isinstance(self._source, FileFacts):
            return None
        document = self._source.inventory.document
        return [*(document.get("identities") or {}), *(document.get("workloads") or {})]

    def knows(self, target: str) -> bool:
        """Whether ``target`` is an id anywhere in this side's inventory (any section), so not an unknown target."""
        document = self.document()
        if document is None:
            hood = self.facts.snapshot(target, None)[0]
            return bool(hood["identities"] or hood["workloads"] or hood["protected"])
        for section in document.values():
            if isinstance(section, Mapping) and target in section:
                return True
            if isinstance(section, list) and target in section:
                return True
        return False

    def document(self) -> Mapping[str, Any] | None:
        """This side's whole inventory document (None for a database inventory)."""
        from hitlgate.engine.decide.facts import FileFacts

        if not isinstance(self._source, FileFacts):
            return None
        return self._source.inventory.document

    def decide(self, doc: Mapping[str, Any]) -> Outcome:
        """Decide one proposal through the Decider (validation included)."""
        from hitlgate.engine.decide.proposal import Proposal

        d = self.decider.decide_validated(Proposal.from_dict(doc, limits=self.config.limits))
        return Outcome(
            d.tier, tuple(sorted(d.risk_factors)),
            (d.quorum.required, tuple((tuple(sorted(s.roles)), tuple(sorted(s.teams))) for s in d.quorum.slots)),
            d.ttl_seconds, d.fail_closed["code"] if d.fail_closed else None,
            0 if d.tier == "deny" else d.warrant_lifetime(self.config.warrant_ttl_seconds),
        )

    def close(self) -> None:
        """Release the decider."""
        self.decider.close()


# -- the proposals -----------------------------------------------------------------


@dataclass
class Occurrence:
    """One proposal compared, and where it came from."""

    source: str
    doc: dict[str, Any]


def sweep(targets: Sequence[str], literals: Mapping[str, Sequence[str]] | None = None,
          unknown: Sequence[str] = ()) -> Iterator[Occurrence]:
    """Every target x every action type x every requester kind (x each literal of :func:`field_literals`).

    ``unknown`` (from :func:`unknown_targets`) are swept too: the first, the id no literal made, with every
    literal of the other fields like a known target; the literal-derived ones with the fields held fixed
    (each literal would multiply them again).
    """
    from hitlgate.engine.decide.schemas import action_types

    variants: list[tuple[str, str]] = [("", "")]
    variants += [(path, lit) for path, lits in (literals or {}).items() for lit in lits]
    plan = [(t, variants) for t in targets]
    plan += [(t, variants if i == 0 else variants[:1]) for i, t in enumerate(unknown)]
    for target, target_variants in plan:
        for action in action_types():
            for kind in REQUESTER_KINDS:
                for path, lit in target_variants:
                    doc: dict[str, Any] = {
                        "action": {"type": action, "target": target, "parameters": {}},
                        "requester": {"id": SWEEP_REQUESTER, "kind": kind},
                        "justification": SWEEP_JUSTIFICATION,
                    }
                    if path == "requester.id":
                        doc["requester"]["id"] = lit
                    elif path:
                        doc[path] = lit
                    yield Occurrence("sweep" if not path else f"sweep {path}={shorten(lit, 40)}", doc)


def read_replay(path: Path, config: Config) -> tuple[list[Occurrence], list[str]]:
    """The proposals of a replay file (audit export or JSON Lines of proposals), and notes on lines skipped."""
    from hitlgate.engine.decide.proposal import Proposal

    limits = config.limits
    out: list[Occurrence] = []
    problems: list[str] = []
    skipped = 0
    try:
        # Non-blocking, so opening a FIFO does not wait for a writer; only a regular file is read.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InputError(f"--replay {path}: cannot read it: {exc.strerror or exc}", code="not_found") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"--replay {path}: not a regular file (a device, FIFO or socket never ends or blocks)",
                         code="invalid_replay")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as fh:
        lineno = 0
        while True:
            # At most one byte over the limit is read: a line without end (/dev/zero) never fills memory.
            raw = fh.readline(limits.audit_line_bytes + 1)
            if not raw:
                break
            lineno += 1
            if len(raw) > limits.audit_line_bytes:
                raise InputError(f"--replay {path}:{lineno}: a line is larger than limits.audit_line_bytes "
                                 f"({limits.audit_line_bytes} bytes)", code="input_too_large")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"--replay {path}:{lineno}: not UTF-8", code="bad_encoding") from None
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                doc = parse_json_line(line, what="replay line", label=where, max_depth=limits.max_depth)
            except ValidationError as exc:
                raise InputError(f"--replay {exc.problems[0] if exc.problems else where}: not JSON "
                                 "(a replay file is hitlgate audit export output or JSON Lines of proposals)",
                                 code="invalid_replay") from None
            proposal = _replayed_proposal(doc)
            if proposal is None:
                continue
            try:
                Proposal.from_dict(proposal, limits=limits)
            except ValidationError as exc:
                skipped += 1
                if len(problems) < _SHOWN_PROBLEMS:
                    problems.append(f"{where}: not a valid proposal: {shorten(exc.problems[0], 200)}")
                continue
            out.append(Occurrence(f"replay {where}", proposal))
    notes = problems
    if skipped > len(problems):
        notes.append(f"... {skipped - len(problems)} more replay line(s) skipped")
    if not out:
        notes.append(f"--replay {path.name}: no proposal found (expected hitlgate audit export output, whose "
                     "proposed events are replayed, or JSON Lines of proposals)")
    return out, notes


def _replayed_proposal(doc: Any) -> dict[str, Any] | None:
    """The proposal a replay line holds: an audit ``proposed`` event's, a bare proposal, or None (other records)."""
    if not isinstance(doc, dict):
        return None
    if "record" in doc:
        if doc.get("record") != "event" or doc.get("kind") != "proposed" or not isinstance(doc.get("payload"), dict):
            return None
        payload = doc["payload"]
        return {k: v for k, v in payload.items() if v is not None and k in (
            "action", "requester", "justification", "incident", "confidence", "evidence")}
    return doc if "action" in doc else None


def scenario_proposals(*configs: Config) -> tuple[list[Occurrence], list[str]]:
    """The scenario corpus of each side (a proposal on both sides once)."""
    from hitlgate.engine.decide.scenarios import load_scenarios

    out: list[Occurrence] = []
    notes: list[str] = []
    seen: set[str] = set()
    for config, side in zip(configs, ("head", "base"), strict=True):
        try:
            scenarios = load_scenarios([config.scenario_dir], limits=config.limits)
        except HitlgateError as exc:
            notes.append(f"the {side} scenario corpus does not load, left out: {shorten(str(exc), 200)}")
            continue
        for s in scenarios:
            doc = s.proposal.to_dict()
            key = json.dumps(doc, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(Occurrence(f"scenario {s.source}#{s.index}", doc))
    return out, notes


# -- changes -----------------------------------------------------------------------


def _slot_text(slot: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    roles, teams = slot
    return " or ".join([*(f"role {r}" for r in roles), *(f"team {t}" for t in teams)]) or "anyone"


def quorum_text(q: tuple[int, tuple[Any, ...]]) -> str:
    """``2 of [role security; team payments]``, or ``none``."""
    if not q[0]:
        return "none"
    return f"{q[0]} of [" + "; ".join(_slot_text(s) for s in q[1]) + "]"


def _shape(q: tuple[int, tuple[Any, ...]]) -> tuple[int, int]:
    """(approvals required, slots named): a quorum without the names of the teams in it."""
    return q[0], len(q[1])


def classify(base: Outcome, head: Outcome) -> str:
    """loosening, tightening, changed (a quorum that is neither) or neutral (factors or approval window alone).

    Within one tier a longer warrant lifetime is a loosening (a granted action
    stays runnable longer) and a shorter one a tightening.
    """
    rb, rh = TIER_RANK[base.tier], TIER_RANK[head.tier]
    if rh < rb:
        return "loosening"
    if rh > rb:
        return "tightening"
    (nb, sb), (nh, sh) = base.quorum, head.quorum
    looser = nh < nb or len(sh) < len(sb) or head.warrant_ttl > base.warrant_ttl
    tighter = nh > nb or len(sh) > len(sb) or head.warrant_ttl < base.warrant_ttl
    if base.quorum == head.quorum and not looser and not tighter:
        return "neutral"
    if base.quorum != head.quorum and nb == nh and len(sb) == len(sh):
        # Same counts: compare slot by slot; a slot more people can fill is looser.
        for a, b in zip(sorted(sb), sorted(sh), strict=True):
            wa = {("r", r) for r in a[0]} | {("t", t) for t in a[1]}
            wb = {("r", r) for r in b[0]} | {("t", t) for t in b[1]}
            if wa < wb:
                looser = True
            elif wb < wa:
                tighter = True
            elif wa != wb:
                looser = tighter = True
    if looser and not tighter:
        return "loosening"
    if tighter and not looser:
        return "tightening"
    return "changed"


@dataclass(frozen=True)
class ChangedProposal:
    """One proposal whose decision changed."""

    source: str
    action_type: str
    target: str
    requester_kind: str
    #: The target is in neither side's inventory (both decide it as an unknown target).
    unknown_target: bool = False

    def describe(self) -> str:
        """``rotate_api_key on svc-x (requester agent; sweep)``, ``... on unknown target svc-y (...)``."""
        target = f"unknown target {self.target}" if self.unknown_target else self.target
        return f"{self.action_type} on {target} (requester {self.requester_kind}; {self.source})"

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return dataclasses.asdict(self)


@dataclass
class ChangeGroup:
    """Identical changes of many proposals."""

    direction: str
    base: Outcome
    head: Outcome
    cause: str
    proposals: list[ChangedProposal] = field(default_factory=list)
    inventory_changes: Counter[str] = field(default_factory=Counter)
    quorum_changes: Counter[str] = field(default_factory=Counter)
    #: The head decisions' factors (they may differ by target within a group), for the explanation.
    factor_sets: Counter[str] = field(default_factory=Counter)
    #: The head decisions' tiers (a group of new targets holds every tier they get).
    head_tiers: Counter[str] = field(default_factory=Counter)

    @property
    def base_tier(self) -> str:
        """The tier on the base side."""
        return self.base.tier

    @property
    def head_tier(self) -> str:
        """The tier on the head side."""
        return self.head.tier

    @property
    def count(self) -> int:
        """How many proposals changed this way."""
        return len(self.proposals)

    @property
    def targets(self) -> set[str]:
        """The targets of those proposals."""
        return {p.target for p in self.proposals}

    @property
    def added(self) -> list[str]:
        """Risk factors only the head decision has."""
        return sorted(set(self.head.factors) - set(self.base.factors))

    @property
    def removed(self) -> list[str]:
        """Risk factors only the base decision has."""
        return sorted(set(self.base.factors) - set(self.head.factors))

    def factor_text(self) -> str:
        """``+irreversible -production_credential``."""
        return " ".join([*(f"+{f}" for f in self.added), *(f"-{f}" for f in self.removed)])

    def quorum_text(self) -> str:
        """``2 approvals → 1 approval`` (the most common change when the teams differ by target), or ""."""
        if not self.quorum_changes:
            return ""
        if len(self.quorum_changes) == 1:
            return next(iter(self.quorum_changes))
        (nb, sb), (nh, sh) = _shape(self.base.quorum), _shape(self.head.quorum)
        return f"{nb} approval(s) in {sb} slot(s) → {nh} approval(s) in {sh} slot(s)"

    def because(self) -> str:
        """Why, in words: the factors that stopped or started applying, the quorum, a failure."""
        parts = []
        if self.removed:
            verb = "no longer applies" if len(self.removed) == 1 else "no longer apply"
            parts.append(f"{' and '.join(self.removed)} {verb}")
        if self.added:
            verb = "now applies" if len(self.added) == 1 else "now apply"
            parts.append(f"{' and '.join(self.added)} {verb}")
        if self.head.fail_closed:
            parts.append(f"the head fails closed ({self.head.fail_closed})")
        if self.base.fail_closed:
            parts.append(f"the base failed closed ({self.base.fail_closed})")
        if not parts and self.base_tier == self.head_tier and self.quorum_text():
            parts.append(f"the quorum changed: {self.quorum_text()}")
        if self.base_tier == self.head_tier and self.base.warrant_ttl != self.head.warrant_ttl:
            parts.append(f"the warrant lifetime changed: {self.base.warrant_ttl}s → {self.head.warrant_ttl}s")
        if not parts and self.base_tier == self.head_tier and self.base.ttl != self.head.ttl:
            parts.append(f"the approval window changed: {self.base.ttl}s → {self.head.ttl}s")
        if not parts:
            common = self.factor_sets.most_common(1)
            same = common[0][0] if common else ""
            parts.append(f"the rules changed for the same risk factors ({same}" + (", ..." if len(self.factor_sets) > 1
                         else "") + ")" if same else "the rules changed (no risk factor on either side)")
        return "; ".join(parts)

    def describe(self) -> str:
        """``37 proposals on 12 targets: single_approval → auto_allow because ... (inventory change)``."""
        n, t = self.count, len(self.targets)
        if self.direction == "new target":
            tiers = ", ".join(f"{k} {tier}" for tier, k in sorted(self.head_tiers.items()))
            return (f"{n} proposal{'s' if n != 1 else ''} on {t} new target{'s' if t != 1 else ''} "
                    f"(absent from the base inventory): {tiers}")
        tiers = (f"{self.base_tier} → {self.head_tier}" if self.base_tier != self.head_tier
                 else f"{self.base_tier} (tier unchanged)")
        unknown = len({p.target for p in self.proposals if p.unknown_target})
        which = (f" ({unknown} unknown to the inventory)" if 0 < unknown < t else
                 " unknown to the inventory" if unknown else "")
        return (f"{n} proposal{'s' if n != 1 else ''} on {t} target{'s' if t != 1 else ''}{which}: {tiers} "
                f"because {self.because()} ({self.cause} change)")

    def details(self) -> list[str]:
        """The quorum change and the most common inventory changes behind this group."""
        out = []
        for change, n in self.quorum_changes.most_common(3):
            out.append(f"quorum: {change}" + (f" ({n} proposals)" if n != self.count else ""))
        for change, n in self.inventory_changes.most_common(3):
            out.append(f"inventory: {change}" + (f" ({n} proposals)" if n != self.count else ""))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form (every proposal)."""
        return {
            "direction": self.direction, "cause": self.cause, "summary": self.describe(),
            "base_tier": self.base_tier, "head_tier": self.head_tier,
            "factors_added": self.added, "factors_removed": self.removed,
            "quorum_changes": dict(self.quorum_changes.most_common(10)),
            "ttl_seconds": {"base": self.base.ttl, "head": self.head.ttl},
            "warrant_ttl_seconds": {"base": self.base.warrant_ttl, "head": self.head.warrant_ttl},
            "proposals": [p.to_dict() for p in self.proposals],
            "targets": sorted(self.targets),
            "inventory_changes": dict(self.inventory_changes.most_common(10)),
        }


def _fail_unless_never(step: Any, findings: list[Any], summary: str, fail_on: str) -> None:
    """Fail ``step`` with ``findings``, or, under ``--fail-on never``, make it a note that carries them."""
    if fail_on == "never":
        step.status, step.summary = "note", summary
        step.findings.extend(findings)
    else:
        step.fail(*findings, summary=summary)


_ORDER = {"loosening": 0, "changed": 1, "tightening": 2, "neutral": 3, "new target": 4}


@dataclass
class DiffReport:
    """The decision diff: groups of changes, what was compared, and how long it took."""

    base_ref: str
    base_commit: str
    fail_on: str
    groups: list[ChangeGroup] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compared: dict[str, int] = field(default_factory=dict)
    evaluations: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: Proposal fields the policy reads that the sweep does not vary (the diff may miss changes keyed on them).
    incomplete: list[str] = field(default_factory=list)
    #: Other reasons the diff may miss changes (tests on the target id it cannot exercise, unknown targets the
    #: cap left out), each a sentence.
    gaps: list[str] = field(default_factory=list)
    #: ``(module, builtin, line)`` for each nondeterministic call of the head the base pack does not make.
    new_nondeterministic: list[tuple[str, str, int]] = field(default_factory=list)
    #: Why no diff could be made at all (the base does not load), or None.
    failure: str | None = None

    def steps(self) -> list[Any]:
        """The diff's own checks: it could be made, and it is complete (a failing check under --fail-on)."""
        from hitlgate.engine.decide._policycheck import Finding, Step

        out = []
        made = Step("diff-base", f"decision diff against {self.base_ref} could be made")
        if self.failure is not None:
            made.fail(Finding(self.failure), summary="no decision diff")
        else:
            made.summary = "both sides load"
        out.append(made)
        level = "error" if self.fail_on != "never" else "warning"
        complete = Step("diff-complete", "decision diff covers every proposal field the policy reads")
        if self.failure is not None:
            complete.skip("no decision diff (see above)")
        elif self.incomplete or self.gaps:
            findings = [Finding(f"decision diff incomplete: the policy reads input.{f}, which the sweep does not "
                                "vary; review by hand or add scenarios/replay covering it", level=level)
                        for f in self.incomplete]
            findings += [Finding(f"decision diff incomplete: {gap}", level=level) for gap in self.gaps]
            summary = ", ".join(x for x in (f"{len(self.incomplete)} field(s) not varied" if self.incomplete else "",
                                            f"{len(self.gaps)} other gap(s)" if self.gaps else "") if x)
            _fail_unless_never(complete, findings, summary, self.fail_on)
        else:
            complete.summary = "the sweep varies every field the policy reads"
        out.append(complete)
        # A nondeterministic call the base did not make can loosen decisions later (a date, a random draw, a
        # remote answer): no diff made today sees that, so it fails like a loosening would.
        steady = Step("diff-deterministic", "the head pack calls no nondeterministic builtin the base does not")
        if self.failure is not None:
            steady.skip("no decision diff (see above)")
        elif self.new_nondeterministic:
            findings = [Finding(f"{module} now calls {call}, which the base pack does not call: its decisions may "
                                "change later (a date, a random draw, a remote answer) where this diff cannot see "
                                "it, so it counts as a possible loosening; review by hand", file=module,
                                line=line or None, level=level)
                        for module, call, line in self.new_nondeterministic]
            _fail_unless_never(steady, findings, f"{len(findings)} new nondeterministic call(s)", self.fail_on)
        else:
            steady.summary = "no new nondeterministic call"
        out.append(steady)
        return out

    @property
    def forbidden(self) -> list[ChangeGroup]:
        """The groups ``--fail-on`` forbids."""
        if self.fail_on == "never":
            return []
        if self.fail_on == "any-change":
            return list(self.groups)
        return [g for g in self.groups if g.direction in ("loosening", "changed")]

    def headline(self) -> str:
        """``40 of 3,200 decisions changed: 37 loosening, 3 tightening``."""
        total = sum(self.compared.values())
        changed = sum(g.count for g in self.groups)
        by = Counter[str]()
        for g in self.groups:
            by[g.direction] += g.count
        kinds = ", ".join(f"{by[k]} on new targets" if k == "new target" else f"{by[k]} {k}" for k in _ORDER if by[k])
        sources = ", ".join(f"{n:,} {s}" for s, n in self.compared.items())
        if not changed:
            return f"no decision changed ({total:,} proposals compared: {sources})"
        return f"{changed:,} of {total:,} decisions changed: {kinds} ({sources})"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "base_ref": self.base_ref, "base_commit": self.base_commit, "fail_on": self.fail_on,
            "summary": self.headline(), "compared": self.compared, "evaluations": self.evaluations,
            "seconds": round(self.seconds, 3), "notes": self.notes,
            "changes": [g.to_dict() for g in self.groups],
            "forbidden": sum(g.count for g in self.forbidden),
        }


def _record_changes(base: Mapping[str, Any], head: Mapping[str, Any], base_doc: Mapping[str, Any] | None = None,
                    head_doc: Mapping[str, Any] | None = None) -> list[str]:
    """``workloads.checkout-web.customer_facing: true → false`` for each field two neighbourhoods differ in.

    A record only one neighbourhood holds is "added" or "removed" only when it is absent from the other
    side's whole inventory (``base_doc``, ``head_doc``); otherwise it existed all along and the target merely
    looks it up now (or no longer), e.g. a new owner team.
    """

    def exists(doc: Mapping[str, Any] | None, section: str, key: str) -> bool:
        return doc is not None and isinstance(doc.get(section), Mapping) and key in doc[section]

    out = []
    for section in sorted(set(base) | set(head)):
        b, h = base.get(section), head.get(section)
        if not isinstance(b, Mapping) or not isinstance(h, Mapping):
            if b != h:
                out.append(f"{section}: {shorten(json.dumps(b), 60)} → {shorten(json.dumps(h), 60)}")
            continue
        for key in sorted(set(b) | set(h)):
            rb, rh = b.get(key), h.get(key)
            if rb == rh:
                continue
            if rb is None or rh is None:
                if rb is None and exists(base_doc, section, key):
                    out.append(f"{section}.{key} now concerns this target (it exists on both sides)")
                elif rh is None and exists(head_doc, section, key):
                    out.append(f"{section}.{key} no longer concerns this target (it exists on both sides)")
                else:
                    out.append(f"{section}.{key} {'added' if rb is None else 'removed'}")
                continue
            for f in sorted(set(rb) | set(rh)):
                if rb.get(f) != rh.get(f):
                    out.append(f"{section}.{key}.{f}: {shorten(json.dumps(rb.get(f)), 60)} → "
                               f"{shorten(json.dumps(rh.get(f)), 60)}")
    return out


Batch = list[tuple[str, dict[str, Any]]]
Decided = list[tuple[tuple[str, str], Outcome]]

#: From this many distinct evaluations on, worker processes decide (below it, threads in this process).
PROCESS_THRESHOLD = 4000

#: The sides a worker process decides with, built once per process by :func:`_worker_init`.
_WORKER_SIDES: dict[str, Side] = {}


def _decide_batch(side: Side, batch: Batch) -> Decided:
    out = []
    for key, doc in batch:
        try:
            outcome = side.decide(doc)
        except ValidationError as exc:
            outcome = Outcome("deny", (), (0, ()), 0, f"invalid proposal: {shorten(exc.problems[0], 120)}")
        out.append(((side.name, key), outcome))
    return out


def _worker_init(configs: Sequence[tuple[str, Config]]) -> None:
    for name, config in configs:
        _WORKER_SIDES[name] = Side(name, config)


def _worker_run(task: tuple[str, Batch]) -> Decided:
    name, batch = task
    return _decide_batch(_WORKER_SIDES[name], batch)


def _evaluate(sides: Sequence[tuple[Side, dict[str, dict[str, Any]]]]) -> dict[tuple[str, str], Outcome]:
    """Decide every distinct proposal of every side: in worker processes when there are many, else on threads.

    regopy releases the GIL while it evaluates, but validating the proposal,
    building the input and checking the decision are Python: with thousands
    of proposals that half would run on one core, so each CPU gets a process
    of its own (each builds both sides once: a compile and an inventory load).
    """
    tasks: list[tuple[Side, Batch]] = []
    for side, todo in sides:
        items = list(todo.items())
        tasks.extend((side, items[i:i + _BATCH]) for i in range(0, len(items), _BATCH))
    total = sum(len(todo) for _, todo in sides)
    workers = max(1, min(os.cpu_count() or 1, 8))
    results: dict[tuple[str, str], Outcome] = {}
    if workers == 1 or len(tasks) <= 1:
        for side, batch in tasks:
            results.update(_decide_batch(side, batch))
        return results
    if total >= PROCESS_THRESHOLD:
        # fork, not spawn: spawn re-imports the caller's main module, which runs a script without a
        # __main__ guard a second time. Nothing else runs in this process now (no thread holds a lock), and
        # each worker builds its own sides rather than use the interpreters it inherits.
        context = multiprocessing.get_context("fork")
        configs = [(side.name, side.config) for side, _ in sides]
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                 initargs=(configs,)) as procs:
            for chunk in procs.map(_worker_run, [(side.name, batch) for side, batch in tasks]):
                results.update(chunk)
        return results
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hitlgate-diff") as pool:
        for chunk in pool.map(lambda t: _decide_batch(*t), tasks):
            results.update(chunk)
    return results


def compare(base: Side, head: Side, occurrences: Sequence[Occurrence], report: DiffReport, *,
            base_targets: frozenset[str] | None = None) -> None:
    """Decide every occurrence on both sides (each distinct one once) and group the changes into ``report``.

    A target absent from ``base_targets`` (the base inventory) but in the head's inventory is new: the base
    failed closed on it as an unknown target, so its decisions are reported in a group of their own ("new
    target"), neither loosening nor tightening. A target in neither inventory is an unknown target on both
    sides: its changes are classified like any other, and its proposals say "unknown target".
    """
    same_modules = (base.modules.revision == head.modules.revision
                    and base.config.risk_factors == head.config.risk_factors
                    and not head.nondeterministic)
    if head.nondeterministic:
        report.notes.append(f"the head pack calls {', '.join(head.nondeterministic)}: its decisions may differ "
                            "from run to run, so some changes may not come from the change itself")
    sections = None if head.sections is None or base.sections is None else head.sections | base.sections
    facts_differ: dict[str, bool] = {}
    known: dict[str, tuple[bool, bool]] = {}

    def knows(target: str) -> tuple[bool, bool]:
        k = known.get(target)
        if k is None:
            k = known[target] = (base.knows(target), head.knows(target))
        return k

    def differs(target: str) -> bool:
        d = facts_differ.get(target)
        if d is None:
            d = base.neighbourhood(target, sections) != head.neighbourhood(target, sections)
            facts_differ[target] = d
        return d

    todo_base: dict[str, dict[str, Any]] = {}
    todo_head: dict[str, dict[str, Any]] = {}
    keyed: list[tuple[Occurrence, str, str]] = []
    for occ in occurrences:
        target = str((occ.doc.get("action") or {}).get("target", ""))
        kb, kh = base.key(occ.doc), head.key(occ.doc)
        if same_modules and not differs(target):
            continue  # Same modules, same facts, deterministic: the same decision.
        keyed.append((occ, kb, kh))
        todo_base.setdefault(kb, occ.doc)
        todo_head.setdefault(kh, occ.doc)
    report.evaluations = {"base": len(todo_base), "head": len(todo_head)}
    results = _evaluate([(base, todo_base), (head, todo_head)])
    modules_changed = base.modules.revision != head.modules.revision
    groups: dict[tuple[Any, ...], ChangeGroup] = {}
    for occ, kb, kh in keyed:
        ob, oh = results[("base", kb)], results[("head", kh)]
        if ob == oh:
            continue
        action = occ.doc["action"]
        target = str(action["target"])
        inventory_changed = differs(target)
        cause = ("policy and inventory" if modules_changed and inventory_changed else "policy" if modules_changed
                 else "inventory" if inventory_changed else "configuration")
        in_base, in_head = knows(target)
        # New: the head's inventory holds it and the base's did not. In neither: an unknown target on both sides,
        # whose changes are the policy's and classified like any other.
        new_target = base_targets is not None and target not in base_targets and in_head
        direction = "new target" if new_target else classify(ob, oh)
        if new_target:
            cause = "inventory"
        # Target-specific details (the owner team in a slot) stay out of the key, so one rule's effect is one
        # group; the quorums themselves are counted per group.
        gkey: tuple[Any, ...] = ("new target",) if new_target else (
                direction, ob.tier, oh.tier, tuple(sorted(set(oh.factors) - set(ob.factors))),
                tuple(sorted(set(ob.factors) - set(oh.factors))), ob.fail_closed, oh.fail_closed, cause,
                None if ob.tier != oh.tier else (_shape(ob.quorum), _shape(oh.quorum), ob.ttl, oh.ttl,
                                                 ob.warrant_ttl, oh.warrant_ttl))
        group = groups.get(gkey)
        if group is None:
            group = groups[gkey] = ChangeGroup(direction, ob, oh, cause)
        group.factor_sets[", ".join(oh.factors)] += 1
        group.head_tiers[oh.tier] += 1
        if ob.quorum != oh.quorum and not new_target:
            group.quorum_changes[f"{quorum_text(ob.quorum)} → {quorum_text(oh.quorum)}"] += 1
        group.proposals.append(ChangedProposal(occ.source, str(action["type"]), target,
                                               str((occ.doc.get("requester") or {}).get("kind", "")),
                                               unknown_target=not in_base and not in_head))
        if inventory_changed and not new_target:
            for change in _record_changes(base.neighbourhood(target, sections), head.neighbourhood(target, sections),
                                          base.document(), head.document()):
                group.inventory_changes[change] += 1
    report.groups = sorted(groups.values(), key=lambda g: (_ORDER[g.direction], -g.count, g.describe()))


def _target_gaps(base: Side, head: Side, cut: int) -> list[str]:
    """Why the unknown-target sweep may miss a change: tests on the target id it cannot exercise, ids cut off."""
    gaps = []
    for side in (base, head):
        for module, call in target_tests(side.modules.modules):
            if call == "indexing":
                what = "indexes the target id"
            elif call.startswith(("==", "!=", "in ")):
                what = f"tests the target id ({call})"
            elif call.startswith("more than"):
                what = f"has {call} the target id"
            else:
                what = f"applies {call} to the target id"
            gaps.append(f"the {side.name} module {module} {what} (input.action.target), which the unknown-target "
                        "sweep cannot exercise (it tries only the modules' string literals as ids); review by hand "
                        "or add scenarios/replay covering it")
    if cut:
        gaps.append(f"{cut} unknown target id(s) derived from the modules' string literals were not swept (at most "
                    f"{MAX_UNKNOWN_TARGETS} are); review decisions on targets missing from the inventory by hand")
    return gaps


def _new_nondeterministic(base: Side, head: Side) -> list[tuple[str, str, int]]:
    """``(module file, builtin, line)`` for each nondeterministic call of the head the base does not make."""
    before = set(base.nondeterministic)
    found = []
    for module, src in head.modules.modules:
        for call in nondeterministic_calls([src]):
            if call in before or call in SIDE_EFFECT_CALLS:
                continue
            # The first line that calls it outside a comment (best effort: 0, no line, if none does on one line).
            pattern = re.compile(r"(?<![\w.])" + r"\s*\.\s*".join(map(re.escape, call.split("."))) + r"\s*\(")
            line = next((i for i, text in enumerate(src.splitlines(), 1) if pattern.search(scan(text).code)), 0)
            found.append((display_path(head.config.policy_dir / module), call, line))
    return found


def locate_base(head_config: Config, ref: str) -> tuple[Path, str]:
    """The repository holding the project and the commit ``ref`` names; InputError (exit 2) when either is missing."""
    anchor = head_config.source.parent if head_config.source is not None else Path.cwd()
    top = repository_root(anchor)
    return top, resolve_ref(top, ref)


def run_diff(
    head_config: Config, ref: str, *, replay: Path | None = None, fail_on: str = "loosening",
    located: tuple[Path, str] | None = None, replay_read: tuple[list[Occurrence], list[str]] | None = None,
) -> DiffReport:
    """Compare the decisions of the project at ``ref`` with the working tree's (see the module docstring).

    ``located`` and ``replay_read`` are what :func:`locate_base` and :func:`read_replay` returned, when the
    caller checked the ref and read the replay file first (so a bad one is refused before any check runs).
    """
    start = time.perf_counter()
    top, commit = located or locate_base(head_config, ref)
    report = DiffReport(base_ref=ref, base_commit=commit, fail_on=fail_on)
    replayed: list[Occurrence] = []
    if replay_read is None and replay is not None:
        replay_read = read_replay(replay, head_config)
    if replay_read is not None:
        replayed, notes = replay_read
        report.notes.extend(notes)
    with _sigterm_exits(), base_worktree(top, commit) as worktree:
        try:
            config, notes = base_config(head_config, top, worktree)
        except HitlgateError as exc:
            # A broken configuration at the base is the diff's failure, not the run's: the head's checks stand.
            report.failure = f"the base project's configuration does not load: {shorten(str(exc), 300)}"
            report.seconds = time.perf_counter() - start
            return report
        report.notes.extend(notes)
        if config is None:
            report.seconds = time.perf_counter() - start
            return report
        if head_config.inventory_source == "database" or config.inventory_source == "database":
            report.notes.append("the inventory lives in the state database: both sides read the same inventory, "
                                "so only policy changes show")
        sides: list[Side] = []
        try:
            for name, cfg in (("base", config), ("head", head_config)):
                try:
                    sides.append(Side(name, cfg))
                except HitlgateError as exc:
                    message = f"the {name} project does not load, so no decision diff: {shorten(str(exc), 300)}"
                    if name == "base":
                        report.failure = message
                    else:
                        # The head's own checks report why it does not load.
                        report.notes.append(message)
                    report.seconds = time.perf_counter() - start
                    return report
            base, head = sides
            scenarios, notes = scenario_proposals(head_config, config)
            report.notes.extend(notes)
            base_targets, head_targets = base.targets(), head.targets()
            if base_targets is None or head_targets is None:
                report.notes.append("no sweep: the inventory is in the database, whose ids are not listed here")
            targets = sorted(set(base_targets or ()) | set(head_targets or ()))
            literals: dict[str, list[str]] = {}
            base_sources = [src for _, src in base.modules.modules]
            head_sources = [src for _, src in head.modules.modules]
            unknown, cut = unknown_targets(base_sources, head_sources, lambda t: base.knows(t) or head.knows(t))
            if base.modules.revision != head.modules.revision:
                # The sweep holds the justification, requester id, parameters, ... fixed: a change keyed on one
                # of them is invisible to it unless the literals the pack compares them against are swept too.
                literals, covered = field_literals([*base_sources, *head_sources])
                report.incomplete = unvaried_reads(base.reads, head.reads, covered)
                report.gaps = _target_gaps(base, head, cut)
                report.new_nondeterministic = _new_nondeterministic(base, head)
            else:
                # Same modules: an id in neither inventory has the same (empty) facts on both sides, so only a
                # nondeterministic pack could decide it differently; one such id is enough.
                unknown = unknown[:1]
            swept = list(sweep(targets, literals))
            unknown_swept = list(sweep([], literals, unknown))
            report.compared = {"scenarios": len(scenarios), "replay": len(replayed), "sweep": len(swept),
                               "unknown-target sweep": len(unknown_swept)}
            compare(base, head, [*scenarios, *replayed, *swept, *unknown_swept], report,
                    base_targets=None if base_targets is None else frozenset(base_targets))
        finally:
            for s in sides:
                s.close()
    report.seconds = time.perf_counter() - start
    return report

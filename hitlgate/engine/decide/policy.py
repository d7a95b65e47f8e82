"""The policy pack: Rego modules plus inventory data, and their revisions.

Two halves, loaded and watched separately, so an inventory change never
recompiles the policy (issue 9, Contract 2):

* the *modules revision*: ``sha256:`` over every non-test ``.rego`` module
  (by relative path); it is the ``revision`` in the ``.manifest`` of the OPA
  bundle, which carries the modules only;
* the *inventory revision*: ``sha256:`` over the relative path and bytes of
  each inventory file (or maintained by the database inventory);
* the *policy revision* every decision reports: one hash of both, so a
  decision still names exactly what decided it, whichever engine evaluated it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from hitlgate.engine.decide.inventory import Inventory, inventory_files, load_inventory
from hitlgate.engine.decide.proposal import canonical_json
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits
from hitlgate.errors import HitlgateError, PolicyError, ValidationError

log = logging.getLogger(__name__)

#: The rule every pack must define; the engine and OPA both query it.
DECISION_PATH = "hitlgate/decision"


def policy_files(policy_dir: Path) -> list[Path]:
    """The non-test ``.rego`` modules under ``policy_dir``, sorted."""
    if not policy_dir.is_dir():
        raise PolicyError(f"policy directory {policy_dir} does not exist")
    found = [p for p in policy_dir.rglob("*.rego") if not p.name.endswith("_test.rego") and not p.is_dir()]
    for p in found:
        if not p.is_file():
            # A FIFO would hang the read, and a module silently left out changes what the pack decides.
            raise PolicyError(f"{p}: is not a regular file (a FIFO, socket, device or broken symbolic link)")
    return sorted(found)


def test_files(policy_dir: Path) -> list[Path]:
    """The Rego unit test modules (``*_test.rego``) under ``policy_dir``, sorted."""
    return sorted(p for p in policy_dir.rglob("*_test.rego") if p.is_file())


#: One watched path as it stood: (path, inode, mtime_ns, ctime_ns, size); a missing path is (path, -1, -1, -1, -1).
FileStamp = tuple[str, int, int, int, int]


def _stamp(path: str, st: os.stat_result) -> FileStamp:
    # The ctime and inode are in it because mtime and size alone miss an
    # edit of the same size whose mtime was put back (`cp -p`, `rsync -t`,
    # tar, or an attacker's `touch -r`): no process can set a ctime, and a
    # file replaced by rename has a new inode.
    return (path, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def fingerprint_paths(paths: Sequence[Path]) -> tuple[FileStamp, ...]:
    """A :data:`FileStamp` of each path."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            out.append((str(p), -1, -1, -1, -1))
            continue
        out.append(_stamp(str(p), st))
    return tuple(out)


def _unchanged(fingerprint: tuple[FileStamp, ...] | None) -> bool:
    """Whether every path still has the stamp in ``fingerprint``; stops at the first change.

    The check every decision makes: one ``stat`` per path, compared in
    place rather than rebuilt into a new fingerprint (same answer as
    ``fingerprint_paths(paths) == fingerprint``).
    """
    if fingerprint is None:
        return False
    for stamp in fingerprint:
        try:
            st = os.stat(stamp[0])
        except OSError:
            if stamp[1:] != (-1, -1, -1, -1):
                return False
            continue
        if _stamp(stamp[0], st) != stamp:
            return False
    return True


def modules_revision(modules: Sequence[tuple[str, str]]) -> str:
    """``sha256:`` over canonical JSON of each module's relative path and source hash (Contract 2).

    The revision an OPA bundle's manifest carries: the bundle holds the
    modules only.
    """
    body = {"modules": {name: hashlib.sha256(src.encode("utf-8")).hexdigest() for name, src in modules}}
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


@functools.lru_cache(maxsize=64)
def combine_revisions(modules: str, inventory: str) -> str:
    """The ``policy_revision`` of a decision: both halves of what decided, in one hash (Contract 2).

    Memoised: every decision asks for it, and canonicalising and hashing
    cost more than a tenth of an embedded decision's Python time. The
    result is a pure function of the two strings, so a cached value is
    exact; a few dozen entries cover every revision pair a process meets.
    """
    return "sha256:" + hashlib.sha256(canonical_json({"inventory": inventory, "modules": modules})).hexdigest()


@dataclass(frozen=True)
class PolicyModules:
    """The Rego modules of a pack, without the inventory, and their revision."""

    policy_dir: Path
    modules: tuple[tuple[str, str], ...]
    revision: str
    watched: tuple[Path, ...] = field(repr=False)
    fingerprint: tuple[FileStamp, ...] = field(repr=False)

    @classmethod
    def load(cls, policy_dir: Path) -> PolicyModules:
        """Read the non-test ``.rego`` modules under ``policy_dir``; raises PolicyError."""
        policy_dir = Path(policy_dir)
        files = policy_files(policy_dir)
        if not files:
            raise PolicyError(f"no .rego policy modules in {policy_dir}")
        # Fingerprint before reading, so an edit made while we read is seen
        # as a change on the next call rather than lost.
        watched = tuple(cls.watched_paths(policy_dir))
        fingerprint = fingerprint_paths(watched)
        modules = []
        for f in files:
            try:
                modules.append((f.relative_to(policy_dir).as_posix(), f.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                raise PolicyError(f"cannot read policy module {f}: {exc}") from exc
        return cls(
            policy_dir=policy_dir,
            modules=tuple(modules),
            revision=modules_revision(modules),
            watched=watched,
            fingerprint=fingerprint,
        )

    @staticmethod
    def watched_paths(policy_dir: Path) -> list[Path]:
        """The policy directory, its subdirectories and modules (a new file changes a directory's mtime)."""
        subdirs = sorted(p for p in policy_dir.rglob("*") if p.is_dir())
        return [policy_dir, *subdirs, *policy_files(policy_dir)]

    def changed(self) -> bool:
        """Whether a module changed since they were read (a few stat calls)."""
        return fingerprint_paths(self.watched) != self.fingerprint


@dataclass(frozen=True)
class PolicyPack:
    """Rego modules and inventory, loaded and validated, with their revisions."""

    policy_dir: Path
    data_paths: tuple[Path, ...]
    modules: tuple[tuple[str, str], ...]
    inventory: Inventory
    #: The ``policy_revision`` of decisions made with this pack (modules and inventory).
    revision: str
    #: The revision of the modules alone (an OPA bundle's manifest revision).
    modules_revision: str
    watched: tuple[Path, ...] = field(repr=False)
    fingerprint: tuple[FileStamp, ...] = field(repr=False)

    @classmethod
    def load(cls, policy_dir: Path, data_paths: Sequence[Path], *, limits: Limits = DEFAULT_LIMITS) -> PolicyPack:
        """Read and validate a pack (inventory files under ``limits``); raises PolicyError or ValidationError."""
        policy_dir = Path(policy_dir)
        data_paths = tuple(Path(p) for p in data_paths)
        watched = tuple(cls.watched_paths(policy_dir, data_paths))
        fingerprint = fingerprint_paths(watched)
        modules = PolicyModules.load(policy_dir)
        inventory = load_inventory(data_paths, limits=limits)
        return cls(
            policy_dir=policy_dir,
            data_paths=data_paths,
            modules=modules.modules,
            inventory=inventory,
            revision=combine_revisions(modules.revision, inventory.revision),
            modules_revision=modules.revision,
            watched=watched,
            fingerprint=fingerprint,
        )

    @classmethod
    def load_for_backend(
        cls, policy_dir: Path, data_paths: Sequence[Path], *, limits: Limits = DEFAULT_LIMITS
    ) -> PolicyPack:
        """:meth:`load` for a backend: a pack that does not load is always a :class:`PolicyError`.

        A malformed inventory (a duplicate YAML key, a YAML alias, two
        approvers sharing one key) is the architect's fault, not the caller's
        input: deciding with it must fail closed as ``policy_broken`` (exit
        5), never as a bad argument or an unavailable backend.
        """
        try:
            return cls.load(policy_dir, data_paths, limits=limits)
        except ValidationError as exc:
            raise as_policy_error(exc) from exc

    @staticmethod
    def watched_paths(policy_dir: Path, data_paths: Sequence[Path]) -> list[Path]:
        """Files and directories whose change means the pack must be reloaded.

        Directories are included because adding, removing or renaming a file
        changes the directory's mtime; edits change the file's own.
        """
        return [*PolicyModules.watched_paths(policy_dir), *inventory_watched_paths(data_paths)]

    def changed(self) -> bool:
        """Whether any policy or data file changed since this pack was loaded (a few stat calls)."""
        return fingerprint_paths(self.watched) != self.fingerprint

    @property
    def inventory_revision(self) -> str:
        """The revision of the inventory alone."""
        return self.inventory.revision


def inventory_watched_paths(data_paths: Sequence[Path]) -> list[Path]:
    """The data paths and the inventory files in them (a new file changes its directory's mtime)."""
    paths = list(data_paths)
    try:
        paths.extend(inventory_files(data_paths))
    except PolicyError:
        pass
    return paths


def as_policy_error(exc: ValidationError) -> PolicyError:
    """A malformed inventory as the broken pack it is (exit 5)."""
    return PolicyError(f"policy pack does not load: {exc}", problems=exc.problems)


#: Loads tried in a row when the files change while a broken pack loads.
RELOAD_ATTEMPTS = 3

T = TypeVar("T")

#: Seconds between two looks at the watched files (0: every call). A process-wide
#: setting: ``hitlgate serve`` sets it from ``server.file_check_seconds``.
_check_interval = 0.0


def set_file_check_interval(seconds: float) -> None:
    """Look for changed policy and inventory files at most every ``seconds`` (0: before every decision)."""
    global _check_interval  # noqa: PLW0603 - one setting for the whole serving process.
    _check_interval = max(0.0, float(seconds))


class Reloading(Generic[T]):
    """A value loaded from files, reloaded when they change; a failed load is kept and fails closed.

    Checking for a change costs one ``stat`` per watched path. A load that
    fails is remembered with the fingerprint the files had *before* the
    attempt, so a fix that lands while a broken file loads is never taken
    for the broken file (the value would stay broken until the next edit);
    while the files keep changing under the load, it is retried a few times.
    """

    def __init__(
        self, load: Callable[[], T], watched: Callable[[], Sequence[Path]], *, what: str, watch: bool = True
    ) -> None:
        self._load = load
        self._watched_fn = watched
        self._what = what
        self._watch = watch
        self._lock = threading.Lock()
        self._value: T | None = None
        self._error: HitlgateError | None = None
        self._watched: tuple[Path, ...] = ()
        self._fingerprint: tuple[FileStamp, ...] | None = None
        self._failed_fingerprint: tuple[FileStamp, ...] | None = None
        #: The interval slot (monotonic seconds // interval) in which the files were last found unchanged.
        self._checked_slot: int | None = None
        self._reload()

    def get(self) -> T:
        """The current value; raises the load error while the files are broken."""
        self.refresh()
        value = self._value
        if value is None:
            assert self._error is not None  # noqa: S101 - invariant of _reload.
            raise self._error
        return value

    def _paths(self) -> tuple[Path, ...] | None:
        try:
            return tuple(self._watched_fn())
        except (HitlgateError, OSError):
            return None

    def _disk_fingerprint(self) -> tuple[FileStamp, ...] | None:
        paths = self._paths()
        return None if paths is None else fingerprint_paths(paths)

    def _reload(self) -> None:
        for _attempt in range(RELOAD_ATTEMPTS):
            paths = self._paths()
            before = None if paths is None else fingerprint_paths(paths)
            try:
                value = self._load()
            except HitlgateError as exc:
                self._value, self._error = None, exc
                if self._disk_fingerprint() != before:
                    # The files changed while they were loading: load what is there now.
                    self._failed_fingerprint = None
                    continue
                log.error("%s failed to load; every decision fails closed: %s", self._what, exc)
                self._failed_fingerprint = before
                return
            break
        else:
            # Changing under every attempt: stay closed, and retry on the next call.
            log.error("%s kept changing while loading; every decision fails closed: %s", self._what, self._error)
            return
        self._value, self._error = value, None
        self._watched, self._fingerprint = paths or (), before

    def refresh(self) -> None:
        """Reload if a watched file changed (or the load failed and the files changed since)."""
        if not self._watch:
            return
        current = self._value
        if current is not None:
            # Every value (the policy modules, the inventory) looks again at the first call in each new slot
            # of the interval, the same slots for all: a decision that reads both sees an edit of both in the
            # same call, never the new policy with the old inventory because one was last looked at by
            # another caller (the console reading approvers) part of an interval later.
            interval = _check_interval
            slot = int(time.monotonic() // interval) if interval > 0 else None
            if slot is not None and slot == self._checked_slot:
                return
            if _unchanged(self._fingerprint):
                self._checked_slot = slot
                return
        elif self._disk_fingerprint() == self._failed_fingerprint:
            # Still broken and nothing changed on disk: keep failing closed
            # without reloading on every call.
            return
        with self._lock:
            if self._value is current:
                self._reload()

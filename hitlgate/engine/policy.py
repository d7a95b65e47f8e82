"""The policy pack: Rego modules plus inventory data, and its revision.

The *policy revision* is the content hash of everything that decides: every
non-test ``.rego`` module (by relative path) and the merged inventory
document. The same hash is the ``revision`` in the ``.manifest`` of the OPA
bundle built from the pack, so a decision names exactly what decided it,
whichever engine evaluated it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitlgate.engine.inventory import Inventory, inventory_files, load_inventory
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits
from hitlgate.engine.proposal import canonical_json
from hitlgate.errors import PolicyError, ValidationError

#: The rule every pack must define; the engine and OPA both query it.
DECISION_PATH = "hitlgate/decision"


def policy_files(policy_dir: Path) -> list[Path]:
    """The non-test ``.rego`` modules under ``policy_dir``, sorted."""
    if not policy_dir.is_dir():
        raise PolicyError(f"policy directory {policy_dir} does not exist")
    return sorted(
        p for p in policy_dir.rglob("*.rego") if not p.name.endswith("_test.rego") and p.is_file()
    )


def test_files(policy_dir: Path) -> list[Path]:
    """The Rego unit test modules (``*_test.rego``) under ``policy_dir``, sorted."""
    return sorted(p for p in policy_dir.rglob("*_test.rego") if p.is_file())


def fingerprint_paths(paths: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of each path; a missing path reads as (path, -1, -1)."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            out.append((str(p), -1, -1))
            continue
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


@dataclass(frozen=True)
class PolicyPack:
    """Rego modules and inventory, loaded and validated, with their revision."""

    policy_dir: Path
    data_paths: tuple[Path, ...]
    modules: tuple[tuple[str, str], ...]
    inventory: Inventory
    revision: str
    watched: tuple[Path, ...] = field(repr=False)
    fingerprint: tuple[tuple[str, int, int], ...] = field(repr=False)

    @classmethod
    def load(cls, policy_dir: Path, data_paths: Sequence[Path], *, limits: Limits = DEFAULT_LIMITS) -> PolicyPack:
        """Read and validate a pack (inventory files under ``limits``); raises PolicyError or ValidationError."""
        policy_dir = Path(policy_dir)
        data_paths = tuple(Path(p) for p in data_paths)
        files = policy_files(policy_dir)
        if not files:
            raise PolicyError(f"no .rego policy modules in {policy_dir}")
        # Fingerprint before reading, so an edit made while we read is seen
        # as a change on the next call rather than lost (callers that cache a
        # failure do the same: see RegopyBackend._reload).
        watched = tuple(cls.watched_paths(policy_dir, data_paths))
        fingerprint = fingerprint_paths(watched)
        modules = []
        for f in files:
            try:
                modules.append((f.relative_to(policy_dir).as_posix(), f.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                raise PolicyError(f"cannot read policy module {f}: {exc}") from exc
        inventory = load_inventory(data_paths, limits=limits)
        return cls(
            policy_dir=policy_dir,
            data_paths=data_paths,
            modules=tuple(modules),
            inventory=inventory,
            revision=compute_revision(modules, {"inventory": inventory.document}),
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
            raise PolicyError(f"policy pack does not load: {exc}", problems=exc.problems) from exc

    @staticmethod
    def watched_paths(policy_dir: Path, data_paths: Sequence[Path]) -> list[Path]:
        """Files and directories whose change means the pack must be reloaded.

        Directories are included because adding, removing or renaming a file
        changes the directory's mtime; edits change the file's own.
        """
        subdirs = sorted(p for p in policy_dir.rglob("*") if p.is_dir())
        paths: list[Path] = [policy_dir, *subdirs, *policy_files(policy_dir), *data_paths]
        try:
            paths.extend(inventory_files(data_paths))
        except PolicyError:
            pass
        return paths

    def changed(self) -> bool:
        """Whether any policy or data file changed since this pack was loaded (a few stat calls)."""
        return fingerprint_paths(self.watched) != self.fingerprint

    @property
    def data(self) -> dict[str, Any]:
        """The base document the policy sees (``data.inventory``)."""
        return {"inventory": self.inventory.document}


def compute_revision(modules: Sequence[tuple[str, str]], data: Mapping[str, Any]) -> str:
    """Content hash of a pack: ``sha256:`` over canonical JSON of modules and data."""
    body = {
        "modules": {name: hashlib.sha256(src.encode("utf-8")).hexdigest() for name, src in modules},
        "data": data,
    }
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()

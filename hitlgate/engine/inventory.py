"""The trusted inventory: identities, workloads, partners, teams, approvers.

Inventory files are YAML documents validated against
``schemas/inventory.schema.json``. Several files are merged section by
section; an id defined twice, or a reference to an id that does not exist
(an owner team, a workload in ``used_by``, a partner), is an error naming the
file and the field. The merged document is what the policy sees under
``data.inventory``.

A file is read under ``limits.inventory_file_bytes`` and parsed by
:func:`hitlgate.engine._safeparse.load_yaml`: strict UTF-8, nesting
bounded without recursion, and no anchors, aliases, merge keys, custom
tags or duplicate keys (an id written twice in one file is an error, not a
silent override).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hitlgate.engine import schemas
from hitlgate.engine._locate import display_path, locate_inventory_problem
from hitlgate.engine._safeparse import load_yaml, read_limited
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits
from hitlgate.errors import PolicyError, ValidationError

SECTIONS = ("teams", "workloads", "partners", "identities", "approvers")

PUBLIC_KEY_PREFIX = "ed25519:"


def encode_public_key(raw: bytes) -> str:
    """Encode 32 raw Ed25519 public key bytes in the inventory's text form."""
    return PUBLIC_KEY_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_public_key(text: str) -> Ed25519PublicKey:
    """Decode the inventory's text form of an Ed25519 public key."""
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise ValueError(f"public key must start with {PUBLIC_KEY_PREFIX!r}")
    body = text[len(PUBLIC_KEY_PREFIX):]
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    return Ed25519PublicKey.from_public_bytes(raw)


def public_raw_bytes(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key (to compare keys)."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Approver:
    """A person who may approve or reject, with their registered key."""

    name: str
    roles: frozenset[str]
    teams: frozenset[str]
    public_key: Ed25519PublicKey

    def fills(self, roles: Iterable[str], teams: Iterable[str]) -> bool:
        """Whether this person holds any of ``roles`` or belongs to any of ``teams``."""
        return bool(self.roles.intersection(roles) or self.teams.intersection(teams))


@dataclass(frozen=True)
class Inventory:
    """The merged, validated inventory."""

    document: Mapping[str, Any]
    sources: tuple[str, ...]

    @property
    def approvers(self) -> dict[str, Approver]:
        """The registered approvers by name."""
        out = {}
        for name, rec in self.document.get("approvers", {}).items():
            out[name] = Approver(
                name=name,
                roles=frozenset(rec["roles"]),
                teams=frozenset(rec["teams"]),
                public_key=decode_public_key(rec["public_key"]),
            )
        return out

    def target(self, target_id: str) -> tuple[str, Mapping[str, Any]] | None:
        """Return ``(section, record)`` for a target id, or None when unknown."""
        for section in ("identities", "workloads"):
            rec = self.document.get(section, {}).get(target_id)
            if rec is not None:
                return section, rec
        return None


def _load_yaml(path: Path, limits: Limits) -> Any:
    try:
        data, label = read_limited(
            path, max_bytes=limits.inventory_file_bytes, what="inventory", limit_key="inventory_file_bytes"
        )
    except ValidationError as exc:
        if exc.code == "unreadable":
            raise PolicyError(f"cannot read inventory file {path}: {exc.problems[0]}") from exc
        raise
    return load_yaml(data, what="inventory", label=label, max_depth=limits.max_depth)


def inventory_files(paths: Iterable[Path]) -> list[Path]:
    """Expand directories into their ``*.yaml``/``*.yml`` files, sorted."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml")))
        elif p.exists():
            files.append(p)
        else:
            raise PolicyError(f"inventory path {p} does not exist")
    return files


def merge_documents(docs: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Merge validated inventory documents; an id defined twice is an error."""
    merged: dict[str, Any] = {s: {} for s in SECTIONS}
    merged["protected"] = []
    origin: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    for source, doc in docs:
        for section in SECTIONS:
            for key, rec in (doc.get(section) or {}).items():
                if (section, key) in origin:
                    problems.append(f"{section}.{key}: defined in both {origin[(section, key)]} and {source}")
                    continue
                origin[(section, key)] = source
                merged[section][key] = copy.deepcopy(rec)
        for pid in doc.get("protected") or []:
            if pid not in merged["protected"]:
                merged["protected"].append(pid)
    if problems:
        raise ValidationError("inventory", problems)
    return merged


def check_references(doc: Mapping[str, Any]) -> list[str]:
    """Return one message per dangling reference in a merged inventory."""
    out: list[str] = []
    teams = doc.get("teams", {})
    workloads = doc.get("workloads", {})
    partners = doc.get("partners", {})
    for wid in sorted(set(doc.get("identities", {})) & set(workloads)):
        out.append(f"{wid}: defined both as an identity and as a workload; ids must be unique")
    for section in ("workloads", "partners", "identities"):
        for key, rec in doc.get(section, {}).items():
            if rec["owner"] not in teams:
                out.append(f"{section}.{key}.owner: unknown team {rec['owner']!r}")
    for key, rec in doc.get("identities", {}).items():
        for i, w in enumerate(rec.get("used_by", [])):
            if w not in workloads:
                out.append(f"identities.{key}.used_by[{i}]: unknown workload {w!r}")
        if "partner" in rec and rec["partner"] not in partners:
            out.append(f"identities.{key}.partner: unknown partner {rec['partner']!r}")
    # One key, one person: a key registered under two names would let its
    # holder fill two places of a dual approval alone.
    key_owner: dict[bytes, str] = {}
    for name, rec in doc.get("approvers", {}).items():
        for i, t in enumerate(rec.get("teams", [])):
            if t not in teams:
                out.append(f"approvers.{name}.teams[{i}]: unknown team {t!r}")
        try:
            raw = public_raw_bytes(decode_public_key(rec["public_key"]))
        except ValueError as exc:
            out.append(f"approvers.{name}.public_key: not a valid Ed25519 key ({exc})")
            continue
        other = key_owner.setdefault(raw, name)
        if other != name:
            out.append(
                f"approvers.{name}.public_key: the same key is already registered for {other}; "
                f"{other} and {name} must each have their own key"
            )
    return out


def load_inventory(paths: Iterable[Path], *, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """Load, validate and merge inventory files or directories (each file under ``limits``)."""
    files = inventory_files(paths)
    if not files:
        raise PolicyError("no inventory files found; an empty inventory would make every target unknown")
    docs: list[tuple[str, Mapping[str, Any]]] = []
    problems: list[str] = []
    for f in files:
        doc = _load_yaml(f, limits)
        if doc is None:
            doc = {}
        found = schemas.check("inventory", doc)
        # file:line, as policy test and opa check name a place.
        problems.extend(locate_inventory_problem(f"{f.name}: {p}", [f]) for p in found)
        if not found:
            docs.append((display_path(f), doc))
    if problems:
        raise ValidationError("inventory", problems)
    merged = merge_documents(docs)
    dangling = check_references(merged)
    if dangling:
        raise ValidationError("inventory", [locate_inventory_problem(p, files) for p in dangling])
    return Inventory(document=merged, sources=tuple(str(f) for f in files))

"""Deterministic, seeded inventories and proposals at any size.

The generated inventory follows ``schemas/inventory.schema.json`` and has
the proportions of a real organisation's non-human identities. Per 100
identities there are about 30 workloads, 5 teams and 1.5 federated
partners; each team has two approvers, and a security team and a
partnerships team hold the ``security`` and ``partner_management`` roles
the example pack's quorums ask for. Every approver has a real Ed25519 key
derived from the seed and the approver's name (:func:`approver_private_key`),
so a benchmark can sign approvals that the engine accepts; the derivation
differs from the public demo seed, so the keys are not refused as demo keys.

The mix is chosen so that every tier of the example pack occurs:
production and non-production credentials, low to admin privilege,
customer-facing and internal workloads, partners with and without a safe
fallback, and about one in two hundred identities (and a few workloads)
protected.

Everything is a pure function of ``(size, seed)``: the same arguments give
the same bytes on every machine and Python version (only ``random.Random``
with an integer seed and SHA-256 are used). Records are produced as a
stream, so a million identities are written to disk without holding the
document in memory:

    python -m bench.gen_inventory --size 1000000 --format jsonl --out /tmp/inv
    python -m bench.gen_inventory --size 100 --format yaml --out /tmp/inv

Formats: YAML (the hand-written layout of ``policies/data``, one flow
mapping per record, for small sizes and examples) and JSON Lines
(``{"section", "id", "record"}`` per line, the CMDB export format).
Targets are addressable without the document: :meth:`Spec.identity_id`
and the kind of identity ``i`` are functions of ``i`` and the seed, which
is what :func:`proposals` uses at a million identities.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import random
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

#: Sections in the order they are written (teams first: everything refers to them).
SECTIONS = ("teams", "partners", "workloads", "identities", "approvers")

IDENTITY_KINDS = ("api_key", "service_account", "token", "certificate", "secret", "federated_credential")
#: How often each kind occurs per 20 identities.
KIND_WEIGHTS = {"api_key": 5, "service_account": 5, "token": 4, "secret": 3, "certificate": 2,
                "federated_credential": 1}
KIND_PREFIX = {"api_key": "key", "service_account": "sa", "token": "tok", "certificate": "cert", "secret": "sec",
               "federated_credential": "fed"}
ENVIRONMENTS = ("production", "staging", "development")
PRIVILEGES = ("low", "medium", "high", "admin")
ACTIONS = ("revoke_secret", "rotate_api_key", "suspend_service_account", "invalidate_tokens", "reduce_privileges",
           "isolate_workload", "disable_federated_credential", "notify_owner", "open_ticket")
#: Which kinds of target each action applies to (mirrors the example pack).
APPLICABLE = {
    "revoke_secret": ("secret", "api_key", "token", "certificate"),
    "rotate_api_key": ("api_key", "secret"),
    "suspend_service_account": ("service_account",),
    "invalidate_tokens": ("token", "service_account", "federated_credential"),
    "reduce_privileges": ("service_account", "api_key", "federated_credential"),
    "isolate_workload": ("workload",),
    "disable_federated_credential": ("federated_credential",),
}
REQUESTER_KINDS = ("agent", "human", "service")

SECURITY_TEAM = "team-security"
PARTNER_TEAM = "team-partnerships"
#: Key derivation prefix; deliberately not the demo prefix (hitlgate-demo-approver:).
KEY_PREFIX = "hitlgate-bench-approver"
#: One in PROTECTED_EVERY identities (and workloads) is protected.
PROTECTED_EVERY = 200


def _mix(seed: int, i: int, salt: int) -> int:
    """A cheap, well-spread 32-bit hash of (seed, i, salt) (a murmur3 finaliser)."""
    h = (i * 0x9E3779B1 + seed * 0x85EBCA77 + salt * 0xC2B2AE3D) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def approver_private_key(seed: int, name: str) -> Ed25519PrivateKey:
    """The private key of generated approver ``name`` (anyone with the seed can compute it: bench use only)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"{KEY_PREFIX}:{seed}:{name}".encode()).digest())


def approver_public_key(seed: int, name: str) -> str:
    """The inventory text form (``ed25519:`` + base64url) of ``name``'s public key."""
    raw = approver_private_key(seed, name).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return "ed25519:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Spec:
    """The shape of a generated inventory: its size, seed and derived counts."""

    size: int
    seed: int = 1

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("size must be at least 1 identity")

    @property
    def n_teams(self) -> int:
        """Owner teams (besides the security and partnerships teams): 5 per 100 identities."""
        return max(2, self.size // 20)

    @property
    def n_workloads(self) -> int:
        """Workloads: 30 per 100 identities."""
        return max(3, self.size * 3 // 10)

    @property
    def n_partners(self) -> int:
        """Federated partners: 1.5 per 100 identities."""
        return max(2, self.size * 3 // 200)

    @property
    def n_security(self) -> int:
        """Approvers with the role security (one per 25 owner teams, at least 3)."""
        return max(3, self.n_teams // 25)

    @property
    def n_partner_managers(self) -> int:
        """Approvers with the role partner_management (at least 2)."""
        return max(2, self.n_teams // 100)

    def team_id(self, t: int) -> str:
        """Owner team ``t``."""
        return f"team-{t:05d}"

    def workload_id(self, j: int) -> str:
        """Workload ``j``."""
        return f"wl-{j:07d}"

    def partner_id(self, p: int) -> str:
        """Partner ``p``."""
        return f"partner-{p:05d}"

    def identity_kind(self, i: int) -> str:
        """The kind of identity ``i`` (a function of i and the seed, in the KIND_WEIGHTS proportions)."""
        return _KIND_CYCLE[_mix(self.seed, i, 1) % len(_KIND_CYCLE)]

    def identity_id(self, i: int) -> str:
        """Identity ``i``'s id; its prefix names its kind."""
        return f"{KIND_PREFIX[self.identity_kind(i)]}-{i:07d}"

    def identity_protected(self, i: int) -> bool:
        """Whether identity ``i`` is on the protected list (one in 200, and at least one at any size)."""
        return _mix(self.seed, i, 2) % PROTECTED_EVERY == 0 or i == _mix(self.seed, 0, 4) % self.size

    def workload_protected(self, j: int) -> bool:
        """Whether workload ``j`` is on the protected list (one in 200, and at least one at any size)."""
        return _mix(self.seed, j, 3) % PROTECTED_EVERY == 0 or j == _mix(self.seed, 0, 5) % self.n_workloads

    def team_of_identity(self, i: int) -> int:
        """The owner team of identity ``i`` (identities of a team are contiguous, as in a CMDB)."""
        return min(self.n_teams - 1, i * self.n_teams // self.size)

    def team_of_workload(self, j: int) -> int:
        """The owner team of workload ``j``."""
        return min(self.n_teams - 1, j * self.n_teams // self.n_workloads)

    def workloads_of_team(self, t: int) -> range:
        """The workloads team ``t`` owns (a contiguous range, never empty)."""
        lo = -(-t * self.n_workloads // self.n_teams)
        hi = -(-(t + 1) * self.n_workloads // self.n_teams)
        return range(lo, max(hi, lo + 1)) if lo < self.n_workloads else range(self.n_workloads - 1, self.n_workloads)

    def approver_names(self) -> Iterator[tuple[str, list[str], list[str]]]:
        """``(name, roles, teams)`` of every approver, in a fixed order."""
        for s in range(self.n_security):
            yield f"sec-{s:04d}", ["security"], [SECURITY_TEAM]
        for m in range(self.n_partner_managers):
            yield f"pm-{m:04d}", ["partner_management"], [PARTNER_TEAM]
        for t in range(self.n_teams):
            yield f"owner-{t:05d}-a", ["engineer"], [self.team_id(t)]
            yield f"owner-{t:05d}-b", ["engineer", "lead"], [self.team_id(t)]


_KIND_CYCLE = tuple(k for k in IDENTITY_KINDS for _ in range(KIND_WEIGHTS[k]))

Record = tuple[str, str, Any]


def iter_records(spec: Spec) -> Iterator[Record]:
    """Every record as ``(section, id, record)``; protected ids as ``("protected", id, True)``.

    Sections come in the order of :data:`SECTIONS`, protected ids last. The
    stream is a pure function of ``spec``; each section draws from its own
    seeded generator, so changing one section's rules leaves the others alone.
    """
    yield from _teams(spec)
    yield from _partners(spec)
    yield from _workloads(spec)
    yield from _identities(spec)
    yield from _approvers(spec)
    for j in range(spec.n_workloads):
        if spec.workload_protected(j):
            yield "protected", spec.workload_id(j), True
    for i in range(spec.size):
        if spec.identity_protected(i):
            yield "protected", spec.identity_id(i), True


def _rng(spec: Spec, section: str) -> random.Random:
    return random.Random(f"{spec.seed}:{section}")


def _teams(spec: Spec) -> Iterator[Record]:
    yield "teams", SECURITY_TEAM, {"name": "Security operations"}
    yield "teams", PARTNER_TEAM, {"name": "Partner integrations"}
    for t in range(spec.n_teams):
        yield "teams", spec.team_id(t), {"name": f"Team {t}"}


def _partners(spec: Spec) -> Iterator[Record]:
    rnd = _rng(spec, "partners")
    for p in range(spec.n_partners):
        # Every partner with an even index falls back safely, the others mostly not.
        fallback = p % 2 == 0 or rnd.random() < 0.3
        yield "partners", spec.partner_id(p), {"owner": PARTNER_TEAM, "safe_fallback": fallback}


def _workloads(spec: Spec) -> Iterator[Record]:
    rnd = _rng(spec, "workloads")
    r = rnd.random
    for j in range(spec.n_workloads):
        x = r()
        env = "production" if x < 0.55 else "staging" if x < 0.8 else "development"
        rec: dict[str, Any] = {
            "environment": env,
            "owner": spec.team_id(spec.team_of_workload(j)),
            # Customer-facing workloads run in production.
            "customer_facing": env == "production" and r() < 0.5,
        }
        if r() < 0.1:
            rec["labels"] = {"service-tier": "gold" if r() < 0.3 else "silver"}
        yield "workloads", spec.workload_id(j), rec


def _identities(spec: Spec) -> Iterator[Record]:
    rnd = _rng(spec, "identities")
    r = rnd.random
    n_workloads = spec.n_workloads
    n_partners = spec.n_partners
    # Per-team values are computed once per team, not once per identity (10^6 identities in seconds).
    team_ids = [spec.team_id(t) for t in range(spec.n_teams)]
    team_workloads = [spec.workloads_of_team(t) for t in range(spec.n_teams)]
    for i in range(spec.size):
        kind = spec.identity_kind(i)
        team = spec.team_of_identity(i)
        x = r()
        env = "production" if x < 0.5 else "staging" if x < 0.75 else "development"
        y = r()
        privilege = "low" if y < 0.4 else "medium" if y < 0.75 else "high" if y < 0.9 else "admin"
        own = team_workloads[team]
        used_by: list[str] = []
        # 0-3 workloads: mostly the owner team's own, one in ten from another team.
        for _ in range(int(r() * 4)):
            j = own.start + int(r() * len(own)) if r() < 0.9 else int(r() * n_workloads)
            w = f"wl-{j:07d}"
            if w not in used_by:
                used_by.append(w)
        rec: dict[str, Any] = {
            "kind": kind,
            "environment": env,
            "owner": team_ids[team],
            "privilege": privilege,
            "used_by": used_by,
        }
        # Federated credentials name their partner (nine in ten); a few other credentials belong to one too.
        if (kind == "federated_credential" and r() < 0.9) or r() < 0.02:
            rec["partner"] = f"partner-{int(r() * n_partners):05d}"
        if r() < 0.1:
            rec["labels"] = {"cost-center": f"cc-{team % 97:02d}"}
        yield "identities", f"{KIND_PREFIX[kind]}-{i:07d}", rec


def _approvers(spec: Spec) -> Iterator[Record]:
    for name, roles, teams in spec.approver_names():
        yield "approvers", name, {"roles": roles, "teams": teams, "public_key": approver_public_key(spec.seed, name)}


def generate(size: int, seed: int = 1) -> dict[str, Any]:
    """The whole inventory document in memory (the shape of one YAML file, sections in SECTIONS order)."""
    doc: dict[str, Any] = {s: {} for s in SECTIONS}
    doc["protected"] = []
    for section, key, rec in iter_records(Spec(size, seed)):
        if section == "protected":
            doc["protected"].append(key)
        else:
            doc[section][key] = rec
    return doc


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


def write_yaml(spec: Spec, out: IO[str]) -> None:
    """Stream the inventory as YAML: one flow mapping per record (YAML is a superset of JSON)."""
    out.write(f"# Generated by bench/gen_inventory.py: {spec.size} identities, seed {spec.seed}.\n")
    current = None
    protected: list[str] = []
    for section, key, rec in iter_records(spec):
        if section == "protected":
            protected.append(key)
            continue
        if section != current:
            out.write(f"{section}:\n")
            current = section
        out.write(f"  {_dumps(key)}: {_dumps(rec)}\n")
    out.write("protected:\n" if protected else "protected: []\n")
    for key in protected:
        out.write(f"  - {_dumps(key)}\n")


def write_jsonl(spec: Spec, out: IO[str]) -> None:
    """Stream the inventory as JSON Lines (Contract 3): ``{"section", "id", "record"}`` per line."""
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    for section, key, rec in iter_records(spec):
        if section == "protected":
            out.write(dumps({"section": "protected", "id": key}))
        else:
            out.write(dumps({"section": section, "id": key, "record": rec}))
        out.write("\n")


def write_inventory(spec: Spec, directory: Path, fmt: str = "auto") -> Path:
    """Write the inventory into ``directory`` (created) as ``inventory.yaml`` or ``inventory.jsonl``.

    ``fmt`` is ``yaml``, ``jsonl`` or ``auto`` (YAML up to 10,000 identities,
    JSON Lines above: large inventories are not kept in one YAML file).
    """
    if fmt == "auto":
        fmt = "yaml" if spec.size <= 10_000 else "jsonl"
    if fmt not in ("yaml", "jsonl"):
        raise ValueError(f"unknown format {fmt!r}; use yaml, jsonl or auto")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"inventory.{fmt}"
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as fh:
        (write_yaml if fmt == "yaml" else write_jsonl)(spec, fh)
    tmp.replace(path)
    return path


def write_jsonl_shards(spec: Spec, directory: Path, lines_per_file: int = 250_000) -> list[Path]:
    """Write the inventory as JSON Lines split into files of at most ``lines_per_file`` lines.

    A CMDB export of a million identities is about 240 MB, over the engine's
    default per-file limit (``limits.inventory_file_bytes``, 64 MiB); split
    into ``inventory-0000.jsonl``, ``inventory-0001.jsonl``, ... (about 40 MB
    each) it loads with the defaults. The engine merges the files of a data
    directory, so a record may refer to one in another file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    paths: list[Path] = []
    records = iter_records(spec)
    while True:
        chunk = list(itertools.islice(records, lines_per_file))
        if not chunk:
            return paths
        path = directory / f"inventory-{len(paths):04d}.jsonl"
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as fh:
            for section, key, rec in chunk:
                row = {"section": section, "id": key} if section == "protected" else {
                    "section": section, "id": key, "record": rec}
                fh.write(dumps(row))
                fh.write("\n")
        tmp.replace(path)
        paths.append(path)


def proposals(
    spec: Spec,
    count: int,
    *,
    seed: int = 7,
    inventory: Mapping[str, Any] | None = None,
    unknown_share: float = 0.05,
) -> list[dict[str, Any]]:
    """``count`` valid proposals over the inventory's targets, deterministic in ``(spec, count, seed)``.

    Action types cycle, so every type occurs once ``count >= 9``; requester
    kinds are drawn. Targets: identities (about 70%), workloads (about 20%),
    protected ids (about 5%) and ids that are not in the inventory (about
    ``unknown_share``). Two in three identity proposals pick an action that
    applies to the identity's kind, as a sensible agent would; the rest are
    drawn from every action (which the pack denies as not applicable).
    ``inventory`` is not needed: targets are computed from the spec, and if
    given, only its protected list is used.
    """
    rnd = random.Random(f"{spec.seed}:{seed}:proposals")
    # Computed on first use: a benchmark's first proposal must not wait for a scan of the protected ids.
    protected: list[str] | None = list(inventory.get("protected", [])) if inventory is not None else None
    out: list[dict[str, Any]] = []
    actions = itertools.cycle(ACTIONS)
    for n in range(count):
        action = next(actions)
        x = rnd.random()
        if x < unknown_share:
            target = f"ghost-{rnd.randrange(10**9):09d}"
        elif x < unknown_share + 0.05 and (protected := protected if protected is not None else _some_protected(spec)):
            target = rnd.choice(protected)
        elif x < unknown_share + 0.25:
            target = spec.workload_id(rnd.randrange(spec.n_workloads))
        else:
            i = rnd.randrange(spec.size)
            kind = spec.identity_kind(i)
            if action in APPLICABLE and kind not in APPLICABLE[action] and rnd.random() < 2 / 3:
                # Re-aim at an identity of a fitting kind (a few tries; informational actions fit all).
                for _ in range(40):
                    i = rnd.randrange(spec.size)
                    if spec.identity_kind(i) in APPLICABLE[action]:
                        break
            target = spec.identity_id(i)
        out.append({
            "action": {"type": action, "target": target, "parameters": {"n": n}},
            "requester": {"id": f"agent-{n % 13}", "kind": rnd.choice(REQUESTER_KINDS)},
            "justification": "generated proposal",
            "incident": f"INC-{spec.seed}-{n}",
            "confidence": round(rnd.random(), 3),
        })
    return out


def _some_protected(spec: Spec, limit: int = 1000) -> list[str]:
    """Protected ids without building the document: the first ``limit`` protected identities and workloads."""
    found: list[str] = []
    for j in range(min(spec.n_workloads, limit * PROTECTED_EVERY)):
        if spec.workload_protected(j):
            found.append(spec.workload_id(j))
    for i in range(min(spec.size, limit * PROTECTED_EVERY)):
        if spec.identity_protected(i):
            found.append(spec.identity_id(i))
    return found[:limit]


def main(argv: list[str] | None = None) -> int:
    """Write an inventory (and optionally proposals) to a directory."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100, help="identities (default 100)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--format", choices=("auto", "yaml", "jsonl"), default="auto")
    ap.add_argument("--out", type=Path, required=True, help="directory to write inventory.yaml/.jsonl into")
    ap.add_argument("--proposals", type=int, default=0, help="also write this many proposals to proposals.jsonl")
    args = ap.parse_args(argv)
    spec = Spec(args.size, args.seed)
    t0 = time.perf_counter()
    path = write_inventory(spec, args.out, args.format)
    took = time.perf_counter() - t0
    print(f"{path}: {args.size} identities, {spec.n_workloads} workloads, {spec.n_teams + 2} teams, "
          f"{spec.n_partners} partners, {spec.n_security + spec.n_partner_managers + 2 * spec.n_teams} approvers, "
          f"{path.stat().st_size / 1e6:.1f} MB in {took:.1f} s", file=sys.stderr)
    if args.proposals:
        with (args.out / "proposals.jsonl").open("w", encoding="utf-8") as fh:
            for p in proposals(spec, args.proposals):
                fh.write(json.dumps(p, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

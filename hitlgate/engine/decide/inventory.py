"""The trusted inventory: identities, workloads, partners, teams, approvers.

Inventory files are YAML documents (``*.yaml``/``*.yml``) or JSON Lines
exports of a CMDB (``*.jsonl``, one record a line:
``{"section": ..., "id": ..., "record": {...}}``), validated against
``schemas/inventory.schema.json``. Several files are merged section by
section; an id defined twice, or a reference to an id that does not exist
(an owner team, a workload in ``used_by``, a partner), is an error naming the
file and line and the field. The merged document is indexed by
:class:`hitlgate.engine.decide.facts.FactIndex`; each decision's input carries the
target's neighbourhood under ``inventory``.

A file is read under ``limits.inventory_file_bytes``. YAML is parsed by
:func:`hitlgate.engine._safeparse.load_yaml` (libyaml's C parser where
available): strict UTF-8, nesting bounded without recursion, and no
anchors, aliases, merge keys, custom tags or duplicate keys (an id written
twice in one file is an error, not a silent override). Each JSON line goes
through :func:`hitlgate.engine._safeparse.parse_json` (duplicate keys,
depth, non-finite numbers, NUL refused) after the whole file is checked as
strict UTF-8.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hitlgate.engine._safeparse import decode_utf8, describe, load_yaml, parse_json_line, read_limited
from hitlgate.engine.decide import schemas
from hitlgate.engine.decide._locate import display_path, locate_inventory_problem
from hitlgate.engine.decide.proposal import canonical_json
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits
from hitlgate.errors import PolicyError, ValidationError

SECTIONS = ("teams", "workloads", "partners", "identities", "approvers")

#: The file name endings read as inventory: YAML, and JSON Lines (a CMDB export, one record a line).
INVENTORY_SUFFIXES = (".yaml", ".yml", ".jsonl")

PUBLIC_KEY_PREFIX = "ed25519:"

#: The problem an empty (or blank) inventory file is refused with.
EMPTY_FILE = "the inventory file is empty"


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
    #: ``sha256:`` over the relative path and bytes of each file (Contract 2 of issue 9).
    revision: str = ""

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


def _read(path: Path, limits: Limits) -> tuple[bytes, str]:
    try:
        return read_limited(
            path, max_bytes=limits.inventory_file_bytes, what="inventory", limit_key="inventory_file_bytes",
            regular_only=True,
        )
    except ValidationError as exc:
        if exc.code == "unreadable":
            raise PolicyError(f"cannot read inventory file {path}: {exc.problems[0]}") from exc
        raise


def inventory_files(paths: Iterable[Path]) -> list[Path]:
    """Expand directories into their ``*.yaml``/``*.yml``/``*.jsonl`` files, sorted."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.suffix in INVENTORY_SUFFIXES))
        elif p.exists():
            files.append(p)
        else:
            raise PolicyError(f"inventory path {p} does not exist")
    return files


def _relative_names(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """Each inventory file with its name relative to the data path that holds it (for the revision)."""
    out: list[tuple[Path, str]] = []
    for p in paths:
        if p.is_dir():
            out.extend((f, f.relative_to(p).as_posix()) for f in inventory_files([p]))
        else:
            out.extend((f, f.name) for f in inventory_files([p]))
    return out


def _digests_revision(digests: Iterable[tuple[str, str]]) -> str:
    """``sha256:`` over (relative path, hex SHA-256 of the bytes) of each inventory file, in order (Contract 2)."""
    body = [[name, digest] for name, digest in digests]
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class _Parsed:
    """One inventory file's validated document.

    Not the line of each JSON Lines record (an eighth of the document's
    memory at 10^5 records): only an error naming a record needs it, and
    the file's bytes give it again then.
    """

    document: Mapping[str, Any]


class ParsedFiles:
    """The files of the last load, parsed and validated, by path and SHA-256 of their bytes.

    A reload after an edit of one small file parses and validates only the
    files whose bytes changed: a 10^5-identity CMDB export beside it is
    read and hashed again (its bytes decide, never its mtime), but not
    parsed again. Only files that loaded without a problem are kept, and
    only those of the last load, so the cache holds one inventory's
    documents at most. Records are shared with the inventory built from
    them; nothing modifies a loaded record.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, int], _Parsed] = {}
        self._next: dict[tuple[str, str, int], _Parsed] = {}

    def get(self, key: tuple[str, str, int]) -> _Parsed | None:
        """The file parsed under ``key`` at the last load, kept for the load under way."""
        found = self._entries.get(key)
        if found is not None:
            self._next[key] = found
        return found

    def put(self, key: tuple[str, str, int], parsed: _Parsed) -> None:
        """Keep a file parsed and validated by the load under way."""
        self._next[key] = parsed

    def finish(self, loaded: bool) -> None:
        """End a load: a load that succeeded replaces the kept files; a failed one keeps the last good ones."""
        if loaded:
            self._entries = self._next
        self._next = {}


def merge_documents(docs: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Merge validated inventory documents; an id defined twice is an error.

    Records are moved, not copied (a deep copy of 10^5 records costs
    seconds): the merged sections are new dicts, and the records in them
    are shared only with the parsed files a reload reuses
    (:class:`ParsedFiles`). Nothing modifies a loaded record.
    """
    docs = list(docs)
    if len(docs) == 1:
        # One file: nothing to merge or collide; take its sections as they are.
        only = docs[0][1]
        single: dict[str, Any] = {s: dict(only.get(s) or {}) for s in SECTIONS}
        single["protected"] = list(dict.fromkeys(only.get("protected") or []))
        return single
    merged: dict[str, Any] = {s: {} for s in SECTIONS}
    protected: dict[str, bool] = {}
    origin: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    # A section only one file defines is taken whole: nothing can collide
    # (a CMDB export of 10^5 identities next to a small YAML file).
    alone = {
        section: holders[0]
        for section in SECTIONS
        if len(holders := [doc for _, doc in docs if doc.get(section)]) == 1
    }
    for source, doc in docs:
        for section in SECTIONS:
            if section in alone:
                continue
            target = merged[section]
            for key, rec in (doc.get(section) or {}).items():
                if key in target:
                    problems.append(f"{section}.{key}: defined in both {origin[(section, key)]} and {source}")
                    continue
                origin[(section, key)] = source
                target[key] = rec
        for pid in doc.get("protected") or []:
            protected[pid] = True
    if problems:
        raise ValidationError("inventory", problems)
    for section, doc in alone.items():
        merged[section] = dict(doc[section])
    merged["protected"] = list(protected)
    return merged


def _dangling(doc: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """``(section, id, message)`` for every dangling reference or shared key in a merged inventory."""
    teams = doc.get("teams", {})
    workloads = doc.get("workloads", {})
    partners = doc.get("partners", {})
    identities = doc.get("identities", {})
    for wid in sorted(set(identities).intersection(workloads)):
        yield "identities", wid, f"{wid}: defined both as an identity and as a workload; ids must be unique"
    for section in ("workloads", "partners", "identities"):
        for key, rec in doc.get(section, {}).items():
            if rec["owner"] not in teams:
                yield section, key, f"{section}.{key}.owner: unknown team {rec['owner']!r}"
    for key, rec in identities.items():
        for i, w in enumerate(rec.get("used_by", [])):
            if w not in workloads:
                yield "identities", key, f"identities.{key}.used_by[{i}]: unknown workload {w!r}"
        if "partner" in rec and rec["partner"] not in partners:
            yield "identities", key, f"identities.{key}.partner: unknown partner {rec['partner']!r}"
    approvers = doc.get("approvers", {})
    for key, rec in teams.items():
        for i, name in enumerate(rec.get("escalation", []) if isinstance(rec, dict) else ()):
            if name not in approvers:
                yield "teams", key, f"teams.{key}.escalation[{i}]: unknown approver {name!r}"
    # One key, one person: a key registered under two names would let its
    # holder fill two places of a dual approval alone.
    key_owner: dict[bytes, str] = {}
    for name, rec in doc.get("approvers", {}).items():
        for i, t in enumerate(rec.get("teams", [])):
            if t not in teams:
                yield "approvers", name, f"approvers.{name}.teams[{i}]: unknown team {t!r}"
        try:
            raw = public_raw_bytes(decode_public_key(rec["public_key"]))
        except ValueError as exc:
            yield "approvers", name, f"approvers.{name}.public_key: not a valid Ed25519 key ({exc})"
            continue
        other = key_owner.setdefault(raw, name)
        if other != name:
            yield "approvers", name, (
                f"approvers.{name}.public_key: the same key is already registered for {other}; "
                f"{other} and {name} must each have their own key"
            )


def check_references(doc: Mapping[str, Any]) -> list[str]:
    """Return one message per dangling reference in a merged inventory."""
    if _references_hold(doc):
        return []
    return [message for _, _, message in _dangling(doc)]


#: An approver key in the form :func:`encode_public_key` writes: 43 unpadded base64url characters after the prefix.
_CANONICAL_KEY = re.compile(re.escape(PUBLIC_KEY_PREFIX) + r"[A-Za-z0-9_-]{43}")


def _references_hold(doc: Mapping[str, Any]) -> bool:
    """Whether :func:`_dangling` finds nothing, decided with set operations (no message is built).

    The common case at start: 10^5 records that hold together. Conservative:
    it answers True only when every check :func:`_dangling` makes passes (a
    key in any but the canonical text form sends the caller to the full
    check, which names each problem).
    """
    teams = doc.get("teams", {})
    workloads = doc.get("workloads", {})
    partners = doc.get("partners", {})
    identities = doc.get("identities", {})
    approvers = doc.get("approvers", {})
    if not identities.keys().isdisjoint(workloads.keys()):
        return False
    for section in (workloads, partners, identities):
        if not {rec["owner"] for rec in section.values()} <= teams.keys():
            return False
    if not {w for rec in identities.values() for w in rec.get("used_by", ())} <= workloads.keys():
        return False
    if not {rec["partner"] for rec in identities.values() if "partner" in rec} <= partners.keys():
        return False
    if not {t for rec in approvers.values() for t in rec.get("teams", ())} <= teams.keys():
        return False
    if not {a for rec in teams.values() for a in rec.get("escalation", ())} <= approvers.keys():
        return False
    # A canonical key decodes to the same 32 bytes decode_public_key and
    # public_raw_bytes give (Ed25519PublicKey.from_public_bytes checks only
    # the length), so distinct raw keys here mean one key, one person there.
    texts = [rec["public_key"] for rec in approvers.values()]
    match = _CANONICAL_KEY.fullmatch
    if not all(isinstance(text, str) and match(text) for text in texts):
        return False
    prefix = len(PUBLIC_KEY_PREFIX)
    raws = {base64.urlsafe_b64decode(text[prefix:] + "=") for text in texts}
    return len(raws) == len(texts)


def _load_jsonl(
    data: bytes, label: str, limits: Limits
) -> tuple[dict[str, Any], dict[tuple[str, str], int], list[str]]:
    """Parse a JSON Lines inventory file (Contract 3) into an inventory document.

    Returns the document, the line of each record, and the problems found
    (each ``file:line: ...``). Strict UTF-8 and the size limit are checked
    on the whole file first; each line is parsed with the same JSON rules
    as every other document (duplicate keys, depth, non-finite numbers, NUL).
    """
    text = decode_utf8(data, what="inventory", label=label)
    doc: dict[str, Any] = {}
    lines: dict[tuple[str, str], int] = {}
    problems: list[str] = []
    max_depth = limits.max_depth
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line or line.isspace():
            continue
        entry = _plain_line(line, max_depth)
        if entry is None:
            where = f"{label}:{lineno}"
            try:
                entry = parse_json_line(line, what="inventory", label=where, max_depth=max_depth)
            except ValidationError as exc:
                problems.extend(exc.problems)
                continue
        if not (
            type(entry) is dict
            and len(entry) == 3
            and entry.get("section") in _RECORD_SECTIONS
            and type(entry.get("id")) is str
            and type(entry.get("record")) is dict
        ):
            # Anything but a plain record line (a protected id, or a problem) takes the checks that name it.
            problem = _entry_problem(entry)
            if problem is not None:
                problems.append(f"{label}:{lineno}: {problem}")
                continue
        section, key = entry["section"], entry["id"]
        if (section, key) in lines:
            first = lines[(section, key)]
            problems.append(f"{label}:{lineno}: {section}.{describe(key)}: defined twice (first on line {first})")
            continue
        lines[(section, key)] = lineno
        if section == "protected":
            doc.setdefault("protected", []).append(key)
        else:
            doc.setdefault(section, {})[key] = entry["record"]
    if not problems:
        found = schemas.check("inventory", doc)
        if found:
            # Name the line of each offending record: the schema names section.id.field.
            problems.extend(_place(p, lines, label) for p in found)
    return doc, lines, problems


_ENVELOPE = frozenset(("section", "id", "record"))
_RECORD_SECTIONS = frozenset(SECTIONS)


def _plain_line(line: str, max_depth: int) -> Any:
    """The line parsed by orjson when that is provably what :func:`parse_json_line` returns, else None.

    A line of a CMDB export is usually compact JSON without escapes. When
    orjson writes the parsed value back as exactly the line, the line has
    no duplicate key (the value would have one pair fewer than the line),
    no number that is not a finite 64-bit value or written in another form,
    no whitespace and no escape; with no backslash and no more brackets
    than ``max_depth`` it also holds no NUL, no lone surrogate and no
    nesting past the limit. Such a line parses the same under the strict
    rules, ten times faster. Every other line (None) takes the strict path,
    which also names its problems.
    """
    if "\\" in line or line.count("{") + line.count("[") > max_depth:
        return None
    try:
        value = orjson.loads(line)
    except ValueError:  # orjson.JSONDecodeError, and any other refusal
        return None
    return value if orjson.dumps(value) == line.encode() else None


def _entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "each line must be a JSON object {\"section\", \"id\", \"record\"}"
    extra = sorted(set(entry) - _ENVELOPE)
    if extra:
        return f"unexpected field {describe(extra[0])} (a line has section, id and record)"
    section = entry.get("section")
    if section not in (*SECTIONS, "protected"):
        return f"section: must be one of {', '.join((*SECTIONS, 'protected'))}, got {describe(section)}"
    if not isinstance(entry.get("id"), str):
        return f"id: must be a string, got {describe(entry.get('id'))}"
    if section == "protected":
        if "record" in entry:
            return "a protected line has no record"
    elif not isinstance(entry.get("record"), dict):
        return f"record: must be a JSON object, got {describe(entry.get('record'))}"
    return None


def _place(problem: str, lines: Mapping[tuple[str, str], int], label: str) -> str:
    """``label:line: problem`` for a problem whose path starts with ``section.id`` of a known record."""
    section, _, rest = problem.partition(".")
    if section == "protected":
        m = re.match(r"\[(\d+)\]", rest)
        keys = [k for (s, k) in lines if s == "protected"]
        if m and int(m.group(1)) < len(keys):
            return f"{label}:{lines[('protected', keys[int(m.group(1))])]}: {problem}"
        return f"{label}: {problem}"
    # Ids may contain dots: take the longest id the rest starts with.
    best = 0
    for end in [i for i, c in enumerate(rest) if c in ".[:"] + [len(rest)]:
        line = lines.get((section, rest[:end]))
        if line is not None:
            best = line
    return f"{label}:{best}: {problem}" if best else f"{label}: {problem}"


def load_inventory(
    paths: Iterable[Path], *, limits: Limits = DEFAULT_LIMITS, parsed: ParsedFiles | None = None
) -> Inventory:
    """Load, validate and merge inventory files or directories (each file under ``limits``).

    YAML files (``.yaml``/``.yml``) and JSON Lines files (``.jsonl``, one
    record a line) may be mixed; the revision covers the bytes of each.
    With ``parsed`` (a reloading caller's :class:`ParsedFiles`), a file
    whose bytes are those of the last load is not parsed again.
    """
    # Loading creates 10^6 objects that all live on: the cyclic collector
    # would walk the growing heap again and again (a third of the load time
    # at 10^5 identities) to find no garbage. It resumes afterwards.
    enabled = gc.isenabled()
    gc.disable()
    loaded = False
    try:
        inventory = _load_inventory(paths, limits, parsed)
        loaded = True
        # Move what is alive now (the inventory above all) out of the
        # collector's sight, so every later full collection does not walk
        # 10^6 records (a 100 ms+ pause at a decision's p99 at 10^6
        # identities). The records are plain acyclic data: reference
        # counting still frees them when a reload replaces them.
        gc.freeze()
        return inventory
    finally:
        if parsed is not None:
            parsed.finish(loaded)
        if enabled:
            gc.enable()


def _lines_again(shown: str, f: Path, digest: str, limits: Limits) -> tuple[str, dict[tuple[str, str], int]]:
    """The line of each record of a JSON Lines file taken from the last load (to name a record in an error).

    Read again; if the bytes are no longer the ones loaded, no line is given rather than a wrong one.
    """
    try:
        data, _ = _read(f, limits)
    except (PolicyError, ValidationError):
        return shown, {}
    if hashlib.sha256(data).hexdigest() != digest:
        return shown, {}
    return shown, _load_jsonl(data, shown, limits)[1]


def _load_inventory(paths: Iterable[Path], limits: Limits, parsed: ParsedFiles | None) -> Inventory:
    paths = [Path(p) for p in paths]
    named = _relative_names(paths)
    if not named:
        raise PolicyError("no inventory files found; an empty inventory would make every target unknown")
    docs: list[tuple[str, Mapping[str, Any]]] = []
    problems: list[str] = []
    digests: list[tuple[str, str]] = []
    # Where each JSON Lines record is: (file label, line by (section, id)).
    jsonl_lines: list[tuple[str, dict[tuple[str, str], int]]] = []
    # JSON Lines files taken from the last load, whose record lines are found again only for an error.
    jsonl_kept: list[tuple[str, Path, str]] = []
    for f, name in named:
        data, label = _read(f, limits)
        digest = hashlib.sha256(data).hexdigest()
        digests.append((name, digest))
        shown = display_path(f)
        key = (str(f), digest, limits.max_depth)
        kept = parsed.get(key) if parsed is not None else None
        if not data.strip():
            # Most likely a file caught between truncate and write by an in-place rewrite: taken as empty,
            # it would drop its records (a protected id among them) until the write lands.
            problems.append(
                f"{shown}: {EMPTY_FILE}; write {{}} if it is meant to hold nothing "
                "(replace inventory files whole: write a temporary file, then rename it)"
            )
            continue
        if kept is not None:
            if f.suffix == ".jsonl":
                jsonl_kept.append((shown, f, digest))
            docs.append((shown, kept.document))
            continue
        if f.suffix == ".jsonl":
            doc, lines, found = _load_jsonl(data, shown, limits)
            problems.extend(found)
            jsonl_lines.append((shown, lines))
            if not found:
                docs.append((shown, doc))
                if parsed is not None:
                    parsed.put(key, _Parsed(doc))
            continue
        doc = load_yaml(data, what="inventory", label=label, max_depth=limits.max_depth)
        if doc is None:
            doc = {}
        found = schemas.check("inventory", doc)
        # file:line, as policy test and opa check name a place.
        problems.extend(locate_inventory_problem(f"{f.name}: {p}", [f]) for p in found)
        if not found:
            docs.append((shown, doc))
            if parsed is not None:
                parsed.put(key, _Parsed(doc))
    if problems:
        raise ValidationError("inventory", problems)
    merged = merge_documents(docs)
    dangling = [] if _references_hold(merged) else list(_dangling(merged))
    if dangling:
        files = [f for f, _ in named if f.suffix != ".jsonl"]
        jsonl_lines.extend(_lines_again(shown, f, digest, limits) for shown, f, digest in jsonl_kept)

        def place(section: str, key: str, message: str) -> str:
            for shown, lines in jsonl_lines:
                if (section, key) in lines:
                    return f"{shown}:{lines[(section, key)]}: {message}"
            return locate_inventory_problem(message, files)

        raise ValidationError("inventory", [place(s, k, m) for s, k, m in dangling])
    return Inventory(
        document=merged, sources=tuple(str(f) for f, _ in named), revision=_digests_revision(digests)
    )

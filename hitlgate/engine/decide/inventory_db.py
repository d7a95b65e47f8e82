"""The inventory kept in the state store's database (``inventory: {source: database}``).

An organisation with 10^5-10^6 identities keeps its inventory in a database
fed by its CMDB, not in one YAML file. This module stores the same records
the inventory files hold, in the same database as the workflow (SQLite by
default, PostgreSQL at scale), and feeds them to the decision path's
:class:`~hitlgate.engine.decide.facts.FactIndex`:

* :meth:`InventoryDB.import_files` replaces the whole inventory with the
  contents of inventory files (YAML or JSON Lines, read and validated by
  :func:`hitlgate.engine.decide.inventory.load_inventory`, exactly as the files
  source reads them: schema, ids defined twice, references, one key per
  approver). All or nothing: one transaction; a file that does not validate
  changes nothing. Only the records that differ are written, so re-importing
  a nightly export costs the pollers only what changed.
* :meth:`InventoryDB.put` writes one record and :meth:`InventoryDB.delete`
  removes one, each validated against the per-section schema and checked by
  key for references: a put naming a team, workload or partner that does not
  exist, or an approver key already registered under another name, is
  refused naming the field; a delete that would leave a reference dangling
  is refused naming the record and field that still refer to it.
* :meth:`InventoryDB.load` reads the live records into a ``FactIndex``;
  :meth:`InventoryDB.changes_since` lists the changes after a version,
  through the index on ``version`` (never a scan of the table).
* :class:`DatabaseFacts` is the decider's live index: a background thread
  polls the meta row every :data:`POLL_INTERVAL` seconds and applies the
  changed rows to the index in place, so one changed identity reaches the
  next decision within a second, with no policy recompile, no reload of the
  rest, and no decision waiting for the database.

Storage (tables in :mod:`hitlgate.engine.ledger._store_schema`): one row per
record keyed by (section, id) with the record as canonical JSON text (keys
sorted, no spaces; NULL marks a deleted record, a *tombstone*, so pollers see
deletes), and each change's ``version``; a table of references for the
checks above; and one meta row with the current version and revision. Every
write transaction locks the meta row first (SQLite: the whole file), so
versions are assigned in commit order. A poller reads the meta row and the
changes in one snapshot (PostgreSQL: REPEATABLE READ), so the revision it
records always matches the records it applied.

The inventory revision (``sha256:<hex>``) is a hash chain over every change
ever committed to this database's inventory, starting from
:data:`~hitlgate.engine.ledger._store_schema.INVENTORY_GENESIS`::

    revision_n = "sha256:" + hex(SHA-256(revision_{n-1} "\\n" n "\\n" section "\\n" id "\\n" record_text))

with ``record_text`` the stored canonical JSON, or ``-`` for a delete
(``true`` for a protected id). It changes with every committed change and
covers the whole history: equal revisions mean the same sequence of changes
and so the same inventory. Within one import the changes are chained in
(section, id) order, so the same import into two empty databases yields the
same revision. What it does not cover is a row edited by raw SQL that
bypasses this module: the database's writers are trusted, as the files'
writers are for the files source.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from hitlgate.engine._safeparse import shorten
from hitlgate.engine._time import utcnow
from hitlgate.engine.decide import schemas
from hitlgate.engine.decide.inventory import (
    EMPTY_FILE,
    SECTIONS,
    check_references,
    decode_public_key,
    encode_public_key,
    load_inventory,
    public_raw_bytes,
)
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.store import Store, _db_message, transaction
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits
from hitlgate.errors import BackendUnavailable, InputError, NotFoundError, PolicyError, StorageError, ValidationError

if TYPE_CHECKING:
    from hitlgate.engine.decide.facts import FactIndex

log = logging.getLogger(__name__)

#: Every section a record may be put in: the keyed sections and ``protected``.
ALL_SECTIONS = (*SECTIONS, "protected")
#: A decider polls the database's inventory version this often (seconds).
POLL_INTERVAL = 0.5
#: Decisions fail closed when no poll succeeded for this long (seconds).
STALE_AFTER = 5.0
#: Rows written per statement in an import (bounded memory per statement).
_BATCH = 5000
#: The record text of a protected id.
_PROTECTED = "true"

#: One change as the feed returns it: (section, id, record or None when deleted).
Change = tuple[str, str, Any]


def record_text(record: Any) -> str:
    """The stored form of a record: JSON with sorted keys and no spaces, UTF-8 unescaped (records hold no numbers).

    orjson writes exactly what ``json.dumps(record, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` writes for these records
    (strings, booleans, lists, objects), eight times faster: an import of
    10^5 records encodes each one.
    """
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def chain(revision: str, version: int, section: str, key: str, text: str | None) -> str:
    """The next inventory revision after one change (see the module docstring)."""
    body = f"{revision}\n{version}\n{section}\n{key}\n{'-' if text is None else text}"
    return "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()


#: The content digest splits the records into this many buckets by a CRC of
#: each record's entry; a change rehashes only its bucket (a fixed number, so
#: every process computes the same digest from the same records).
_BUCKETS = 4096
_EMPTY_BUCKET = hashlib.sha256(b"").digest()


def _entry(section: str, key: str, text: str) -> bytes:
    """One record's entry in the digest: length-prefixed, so no two (section, id, text) share one."""
    return f"{len(section)}:{section}{len(key)}:{key}{len(text)}:{text}".encode()


class ContentDigest:
    """A digest of the live records, computed from them at load and moved one change at a time.

    The inventory revision a decision records must name the facts that
    decided, whatever wrote them. The change chain in ``inventory_meta``
    only moves when hitlgate writes; a row edited with raw SQL would keep
    it. This digest is computed from the stored rows themselves when the
    index is loaded and updated from each applied change, so the revision a
    decider reports always covers exactly the records it holds, and equal
    records give an equal revision in every process, however each got there.

    The digest is a two-level hash tree: each record's entry (section, id and
    stored text, length-prefixed) falls in one of :data:`_BUCKETS` buckets
    by its CRC-32; a bucket's hash is SHA-256 over its entries in sorted
    order; the revision is SHA-256 over the bucket hashes in bucket order.
    Loading costs one CRC per record and one SHA-256 pass over the rows (a
    per-record hash was most of the start time at 10^5 records); the
    entries are kept, so a change rehashes the few dozen of its bucket. It is collision resistant
    as SHA-256 is (no sum of terms an attacker could balance).
    """

    def __init__(self) -> None:
        #: bucket -> the entries in it (kept, so a change rehashes its bucket without reading the records).
        self._groups: dict[int, list[bytes]] = {}
        self._hashes = [_EMPTY_BUCKET] * _BUCKETS
        self._revision: str | None = None

    @classmethod
    def of_sections(cls, texts: Mapping[str, Mapping[str, str]], protected: Iterable[str]) -> ContentDigest:
        """The digest of each section's records (``{section: {id: stored text}}``) and the protected ids."""
        digest = cls()
        entries: list[bytes] = []
        for section, found in texts.items():
            head = f"{len(section)}:{section}"
            entries.extend([f"{head}{len(k)}:{k}{len(x)}:{x}".encode() for k, x in found.items()])
        entries.extend(_entry("protected", key, _PROTECTED) for key in protected)
        digest._add_all(entries)
        return digest

    def _add_all(self, entries: list[bytes]) -> None:
        groups = self._groups
        mask = _BUCKETS - 1
        for entry, crc in zip(entries, map(zlib.crc32, entries), strict=True):
            group = groups.get(crc & mask)
            if group is None:
                groups[crc & mask] = [entry]
            else:
                group.append(entry)
        for bucket, group in groups.items():
            group.sort()
            self._hashes[bucket] = hashlib.sha256(b"".join(group)).digest()

    def change(self, changes: Iterable[tuple[str, str, str | None, str | None]]) -> None:
        """Move the digest by ``(section, id, old text or None, new text or None)`` changes."""
        dirty: set[int] = set()
        mask = _BUCKETS - 1
        groups = self._groups
        for section, key, old, new in changes:
            if old is not None:
                entry = _entry(section, key, old)
                bucket = zlib.crc32(entry) & mask
                group = groups.get(bucket)
                if group is not None and entry in group:
                    group.remove(entry)
                dirty.add(bucket)
            if new is not None:
                entry = _entry(section, key, new)
                bucket = zlib.crc32(entry) & mask
                groups.setdefault(bucket, []).append(entry)
                dirty.add(bucket)
        for bucket in dirty:
            group = groups.get(bucket)
            if group:
                group.sort()
                self._hashes[bucket] = hashlib.sha256(b"".join(group)).digest()
            else:
                groups.pop(bucket, None)
                self._hashes[bucket] = _EMPTY_BUCKET
        if dirty:
            self._revision = None

    @property
    def revision(self) -> str:
        """``sha256:`` hex over the bucket hashes: the inventory revision of these records."""
        if self._revision is None:
            self._revision = "sha256:" + hashlib.sha256(b"".join(self._hashes)).hexdigest()
        return self._revision


class TextRecords(MutableMapping[str, Any]):
    """One section's records kept as their stored JSON text, parsed on each read.

    The index of a database inventory holds 10^5-10^6 records; as text they
    take a fraction of the memory of parsed objects, cost nothing to build
    at load (the rows arrive as text), and every read returns a fresh copy
    that no caller can change under the index. A decision reads a handful.
    Setting a record stores a text as is (a stored row) or encodes a record
    with :func:`record_text`.
    """

    __slots__ = ("_texts",)

    def __init__(self, texts: dict[str, str] | None = None) -> None:
        self._texts: dict[str, str] = {} if texts is None else texts

    def __getitem__(self, key: str) -> Any:
        return orjson.loads(self._texts[key])

    def get(self, key: str, default: Any = None) -> Any:
        """The parsed record under ``key``, or ``default``."""
        text = self._texts.get(key)
        return default if text is None else orjson.loads(text)

    def text(self, key: str) -> str | None:
        """The stored text under ``key``, or None."""
        return self._texts.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._texts[key] = value if isinstance(value, str) else record_text(value)

    def __delitem__(self, key: str) -> None:
        del self._texts[key]

    def __contains__(self, key: object) -> bool:
        return key in self._texts

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)


def _parse_row(section: str, key: str, text: str) -> Any:
    """A stored record, parsed; a row that is not valid JSON is a broken inventory naming it."""
    if section == "protected":
        return True
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise PolicyError(
            f"the inventory in the database is invalid: {section}.{key}: the stored record is not valid JSON "
            f"({exc}); it was written outside hitlgate",
            problems=[f"{section}.{key}: not valid JSON"],
        ) from exc


def _parsed(section: str, texts: Mapping[str, str]) -> dict[str, Any]:
    """Every stored record of one section, parsed; the first row that is not JSON is named."""
    loads = orjson.loads
    try:
        return {key: loads(text) for key, text in texts.items()}
    except orjson.JSONDecodeError:
        for key, text in texts.items():
            _parse_row(section, key, text)
        raise


@dataclass
class _Read:
    """One validated read of the live rows: the parsed document, the texts, version, chain revision, digest."""

    document: dict[str, Any]
    texts: dict[str, dict[str, str]]
    version: int
    revision: str
    digest: ContentDigest


def _invalid(problems: list[str]) -> PolicyError:
    return PolicyError(
        "the inventory in the database is invalid (a row was written outside hitlgate?): "
        + "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else ""),
        problems=problems[:50],
    )


def _normalised_key(text: str) -> str | None:
    """An approver key in one canonical text form (4 texts decode to the same 32 bytes), or None if invalid."""
    try:
        return encode_public_key(public_raw_bytes(decode_public_key(text)))
    except ValueError:
        return None


def outgoing_refs(section: str, key: str, record: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(field, ref_section, ref_id)`` for every reference a record makes (as check_references reads them)."""
    out: list[tuple[str, str, str]] = []
    if section in ("workloads", "partners", "identities"):
        out.append(("owner", "teams", record["owner"]))
    if section == "identities":
        out.extend((f"used_by[{i}]", "workloads", w) for i, w in enumerate(record.get("used_by") or ()))
        if "partner" in record:
            out.append(("partner", "partners", record["partner"]))
    if section == "teams":
        out.extend((f"escalation[{i}]", "approvers", name) for i, name in enumerate(record.get("escalation") or ()))
    if section == "approvers":
        out.extend((f"teams[{i}]", "teams", team) for i, team in enumerate(record.get("teams") or ()))
        normal = _normalised_key(record["public_key"])
        if normal is not None:
            out.append(("public_key", "approver_key", normal))
    return out


def _dangling(field: str, ref_section: str, ref_id: str) -> str:
    """The problem text check_references uses for a reference to a missing record."""
    what = {"teams": "team", "workloads": "workload", "partners": "partner", "approvers": "approver"}[ref_section]
    return f"{field}: unknown {what} {ref_id!r}"


@dataclass(frozen=True)
class InventoryStatus:
    """What ``hitlgate inventory status`` reports about the database's inventory."""

    version: int
    revision: str
    counts: Mapping[str, int]
    #: The digest of the live rows (what a decider loading now records); the
    #: change-chain ``revision`` differs from it only in kind, and a row
    #: edited outside hitlgate moves this one but not the chain.
    content_revision: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"version": self.version, "revision": self.revision, "content_revision": self.content_revision,
                "counts": dict(self.counts)}


@dataclass(frozen=True)
class ChangeResult:
    """The outcome of one committed import, put or delete."""

    version: int
    revision: str
    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "version": self.version,
            "revision": self.revision,
            "added": self.added,
            "changed": self.changed,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
        }


class _Writer:
    """One inventory write transaction: the locked meta row and the chain, advanced change by change."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        row = conn.execute(
            sa.select(t.inventory_meta.c.version, t.inventory_meta.c.revision)
            .where(t.inventory_meta.c.id == 1)
            .with_for_update()
        ).one()
        self.version = int(row.version)
        self.revision = str(row.revision)

    def next(self, section: str, key: str, text: str | None) -> int:
        self.version += 1
        self.revision = chain(self.revision, self.version, section, key, text)
        return self.version

    def finish(self) -> None:
        self.conn.execute(
            t.inventory_meta.update()
            .where(t.inventory_meta.c.id == 1)
            .values(version=self.version, revision=self.revision, updated_at=utcnow())
        )


class InventoryDB:
    """The inventory in a state store's database. Open it on a :class:`~hitlgate.engine.ledger.store.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: The digest of the records the last :meth:`load` read.
        self.loaded_digest = ContentDigest()

    @classmethod
    def open(cls, url: str) -> InventoryDB:
        """Open (and migrate) the store at ``url`` and its inventory."""
        return cls(Store.open(url))

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    # -- transactions --------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[_Writer]:
        if self.store.read_only_reason is not None:
            raise StorageError(
                f"the state store {self.store.url_for_people} is read-only: {self.store.read_only_reason}; "
                "the inventory can only be changed where the store is writable",
                code="read_only",
            )
        try:
            with self.store.engine.connect() as conn:
                with transaction(conn, write=True):
                    writer = _Writer(conn)
                    yield writer
                    writer.finish()
        except SQLAlchemyError as exc:
            raise StorageError(f"state store {self.store.url_for_people}: {_db_message(exc)}") from exc

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """One consistent read: the meta row and the records it describes come from the same snapshot."""
        try:
            with self.store.engine.connect() as conn:
                if self.store.dialect == "postgresql":
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with transaction(conn, write=False):
                    yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"state store {self.store.url_for_people}: {_db_message(exc)}") from exc

    # -- reading -------------------------------------------------------------

    @staticmethod
    def _meta(conn: Connection) -> tuple[int, str]:
        row = conn.execute(
            sa.select(t.inventory_meta.c.version, t.inventory_meta.c.revision).where(t.inventory_meta.c.id == 1)
        ).one()
        return int(row.version), str(row.revision)

    def head(self) -> tuple[int, str]:
        """``(version, revision)`` of the last committed change (one row read)."""
        with self._snapshot() as conn:
            return self._meta(conn)

    def document(self) -> tuple[dict[str, Any], int, str]:
        """The whole live inventory as a merged document, with its version and change-chain revision.

        Validated as inventory files are (schema, references, one key per
        approver): rows are only trusted once they pass, so a row written
        straight into the database that breaks the schema makes the
        inventory broken (:class:`PolicyError`, decisions fail closed) instead
        of deciding on it.
        """
        read = self._read()
        return read.document, read.version, read.revision

    def _read(self) -> _Read:
        """The live rows in one snapshot, validated, with their digest (see :meth:`document`)."""
        # One query per section, in one snapshot: each answers (id, text)
        # pairs a dict takes whole, read along the primary key.
        with self._snapshot() as conn:
            version, revision = self._meta(conn)
            stray = _all_rows(conn, _STRAY_ROW)
            if stray:
                section, key = stray[0]
                raise _invalid([f"{section}.{key}: unknown inventory section {section!r}"])
            texts: dict[str, dict[str, str]] = {
                section: dict(_all_rows(conn, _SECTION_ROWS, (section,))) for section in SECTIONS
            }
            protected = [key for key, _ in _all_rows(conn, _SECTION_ROWS, ("protected",))]
        digest = ContentDigest.of_sections(texts, protected)
        # Rows are only trusted once they pass the checks an import makes;
        # they are parsed for that and the parsed copies dropped (the index
        # keeps the texts).
        doc: dict[str, Any] = {section: _parsed(section, found) for section, found in texts.items()}
        doc["protected"] = protected
        problems = schemas.check("inventory", doc) or check_references(doc)
        if problems:
            raise _invalid(problems)
        return _Read(doc, texts, version, revision, digest)

    def content_revision(self) -> str:
        """The inventory revision decisions record: a digest of the live rows themselves (one full read)."""
        return self._read().digest.revision

    def load(self) -> tuple[FactIndex, int]:
        """A :class:`~hitlgate.engine.decide.facts.FactIndex` of the live inventory, and the version it is at."""
        index, version, _ = self._load()
        return index, version

    def _load(self) -> tuple[FactIndex, int, dict[str, TextRecords]]:
        from hitlgate.engine.decide.facts import FactIndex

        # As load_inventory does: no cyclic collection while 10^5 records are
        # read (it would walk the growing heap to find no garbage), then the
        # index is frozen out of the collector's sight, so later full
        # collections do not pause decisions to walk it. The records are
        # acyclic: reference counting still frees a replaced one.
        enabled = gc.isenabled()
        gc.disable()
        try:
            read = self._read()
            protected = read.document["protected"]
            read.document = {}
            sections = {section: TextRecords(found) for section, found in read.texts.items()}
            index = FactIndex({**sections, "protected": protected}, read.digest.revision)
            gc.freeze()
        finally:
            if enabled:
                gc.enable()
        self.loaded_digest = read.digest
        return index, read.version, sections

    def changes_since(self, version: int) -> tuple[list[Change], int, str]:
        """The changes after ``version``, oldest first, and the ``(version, revision)`` they lead to.

        Each record appears once, as it is now (a record changed twice since
        ``version`` is listed at its last version); a deleted record is
        ``(section, id, None)``; a protected id is ``("protected", id, True)``.
        Read through the index on ``version``.
        """
        changes, head, revision = self._stored_changes_since(version)
        return [(s, k, None if x is None else _parse_row(s, k, x)) for s, k, x in changes], head, revision

    def _stored_changes_since(self, version: int) -> tuple[list[tuple[str, str, str | None]], int, str]:
        """:meth:`changes_since` with each record as its stored text (None when deleted)."""
        r = t.inventory_records.c
        changes: list[tuple[str, str, str | None]] = []
        with self._snapshot() as conn:
            head, revision = self._meta(conn)
            if head > version:
                rows = conn.execute(
                    sa.select(r.section, r.id, r.record).where(r.version > version).order_by(r.version)
                )
                for section, key, text in rows:
                    if section not in ALL_SECTIONS:
                        raise _invalid([f"{section}.{key}: unknown inventory section {section!r}"])
                    changes.append((section, key, text))
        return changes, head, revision

    def holders(self, section: str, key: str) -> list[tuple[str, str, str]]:
        """``(section, id, field)`` of records whose recorded references name ``section.key`` (by key, at most 100)."""
        refs = t.inventory_refs.c
        with self._snapshot() as conn:
            rows = conn.execute(
                sa.select(refs.section, refs.id, refs.field)
                .where(refs.ref_section == section, refs.ref_id == key)
                .order_by(refs.section, refs.id, refs.field)
                .limit(100)
            ).all()
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    def get(self, section: str, key: str) -> tuple[Any, int]:
        """``(record, version)`` of one live record; :class:`NotFoundError` if there is none."""
        _check_section(section)
        r = t.inventory_records.c
        with self._snapshot() as conn:
            row = conn.execute(
                sa.select(r.record, r.version).where(r.section == section, r.id == key)
            ).first()
        if row is None or row.record is None:
            raise NotFoundError(f"no {section} record {shorten(key, 60)!r} in the database inventory")
        return (True if section == "protected" else orjson.loads(row.record)), int(row.version)

    def status(self) -> InventoryStatus:
        """Version, revision and how many live records each section holds."""
        r = t.inventory_records.c
        counts = dict.fromkeys(ALL_SECTIONS, 0)
        with self._snapshot() as conn:
            version, revision = self._meta(conn)
            rows = conn.execute(
                sa.select(r.section, sa.func.count()).where(r.record.is_not(None)).group_by(r.section)
            )
            for section, n in rows:
                counts[str(section)] = int(n)
        try:
            content = self.content_revision()
        except PolicyError as exc:
            content = f"invalid: {exc}"
        return InventoryStatus(version=version, revision=revision, counts=counts, content_revision=content)

    def writable_tables(self) -> list[str]:
        """The inventory tables the credentials in the store's URL may change (SQLite: all of them).

        Whoever can change them decides the risk facts and the approvers'
        keys (see the README, "Inventory in the database"): a deciding
        service is better run with a PostgreSQL role that may only read
        them, and ``hitlgate inventory`` with another. SQLite has no
        privileges: whoever may write the file may write every table.
        """
        names = [t.inventory_records.name, t.inventory_refs.name, t.inventory_meta.name]
        with self._snapshot() as conn:
            if conn.dialect.name != "postgresql":
                return names
            return [
                name for name in names
                if conn.execute(sa.text(
                    "SELECT has_table_privilege(CAST(:name AS text), 'INSERT') "
                    "OR has_table_privilege(CAST(:name AS text), 'UPDATE') "
                    "OR has_table_privilege(CAST(:name AS text), 'DELETE')"
                ), {"name": name}).scalar()
            ]

    # -- writing -------------------------------------------------------------

    def import_files(self, paths: Sequence[Path], *, limits: Limits = DEFAULT_LIMITS) -> ChangeResult:
        """Replace the inventory with the contents of inventory files (all or nothing)."""
        # An import replaces the whole inventory: an empty export (a failed
        # CMDB job, a truncated download) would delete every record and
        # make every target unknown.
        wipe = (
            "the files hold no identity and no workload; importing them would delete the whole inventory "
            "(an empty or failed export?)"
        )
        try:
            inventory = load_inventory([Path(p) for p in paths], limits=limits)
        except PolicyError as exc:
            # The files are the caller's input here, not a deployed pack.
            raise InputError(str(exc), code="invalid_inventory", problems=exc.problems) from exc
        except ValidationError as exc:
            if exc.problems and all(EMPTY_FILE in p for p in exc.problems):
                raise InputError(wipe, code="invalid_inventory", problems=exc.problems) from exc
            raise
        doc = inventory.document
        if not doc.get("identities") and not doc.get("workloads"):
            raise InputError(wipe, code="invalid_inventory")
        return self.import_document(doc)

    def import_document(self, document: Mapping[str, Any]) -> ChangeResult:
        """Replace the inventory with a merged document already validated by :func:`load_inventory`."""
        wanted: dict[tuple[str, str], tuple[str, Any]] = {}
        for section in SECTIONS:
            for key, rec in (document.get(section) or {}).items():
                wanted[(section, key)] = (record_text(rec), rec)
        for key in document.get("protected") or ():
            wanted[("protected", key)] = (_PROTECTED, True)
        with self._write() as w:
            rows = _rows(w.conn, "SELECT section, id, record FROM inventory_records")
            current = {(s, k): text for s, k, text in rows}
            inserts: list[tuple[Any, ...]] = []
            updates: list[tuple[Any, ...]] = []
            refs_gone: list[tuple[str, str]] = []
            refs_new: list[tuple[str, str, str, str, str]] = []
            added = changed = deleted = unchanged = 0
            order = {s: i for i, s in enumerate(ALL_SECTIONS)}
            for section, key in sorted(wanted.keys() | current.keys(), key=lambda sk: (order[sk[0]], sk[1])):
                new, rec = wanted.get((section, key), (None, None))
                old = current.get((section, key), "")
                if new is None and old is None:
                    continue
                if new == old:
                    unchanged += 1
                    continue
                version = w.next(section, key, new)
                if (section, key) in current:
                    updates.append((new, version, section, key))
                else:
                    inserts.append((section, key, new, version))
                if old:
                    refs_gone.append((section, key))
                if new is None:
                    deleted += 1
                else:
                    added += old in ("", None)
                    changed += old not in ("", None)
                    if rec is not True and rec is not None:
                        refs_new.extend((section, key, *ref) for ref in outgoing_refs(section, key, rec))
            _bulk_insert(w.conn, "inventory_records", ("section", "id", "record", "version"), inserts)
            _bulk(w.conn, _UPDATE_RECORD, updates)
            _bulk(w.conn, _DELETE_REFS, refs_gone)
            _bulk_insert(w.conn, "inventory_refs", ("section", "id", "field", "ref_section", "ref_id"), refs_new)
        return ChangeResult(w.version, w.revision, added=added, changed=changed, deleted=deleted, unchanged=unchanged)

    def put(self, section: str, key: str, record: Any) -> ChangeResult:
        """Write one record (insert or replace), validated as an inventory file's record would be."""
        _check_section(section)
        if section == "protected":
            if record is not True and record is not None:
                raise ValidationError("inventory record", [f"protected.{key}: the record of a protected id is true"])
            problems = schemas.check("inventory", {"protected": [key]})
            text = _PROTECTED
        else:
            problems = schemas.check("inventory", {section: {key: record}})
            text = record_text(record)
        if problems:
            raise ValidationError("inventory record", problems)
        r = t.inventory_records.c
        with self._write() as w:
            existing = w.conn.execute(
                sa.select(r.record).where(r.section == section, r.id == key)
            ).first()
            if existing is not None and existing.record == text:
                return ChangeResult(w.version, w.revision, unchanged=1)
            if section != "protected":
                self._check_put(w.conn, section, key, record)
            version = w.next(section, key, text)
            row = {"s": section, "i": key, "r": text, "v": version}
            w.conn.execute(_update_record if existing is not None else _insert_record, [row])
            if existing is not None and existing.record is not None:
                w.conn.execute(_delete_refs, [{"s": section, "i": key}])
            if section != "protected":
                refs = _ref_rows(section, key, record)
                if refs:
                    w.conn.execute(_insert_ref, refs)
            fresh = existing is None or existing.record is None
        return ChangeResult(w.version, w.revision, added=int(fresh), changed=int(not fresh))

    def _check_put(self, conn: Connection, section: str, key: str, record: Mapping[str, Any]) -> None:
        """References by key, in the same words as :func:`~hitlgate.engine.decide.inventory.check_references`."""
        problems: list[str] = []
        for field, ref_section, ref_id in outgoing_refs(section, key, record):
            if ref_section == "approver_key":
                other = conn.execute(
                    sa.select(t.inventory_refs.c.id).where(
                        t.inventory_refs.c.ref_section == "approver_key",
                        t.inventory_refs.c.ref_id == ref_id,
                        t.inventory_refs.c.id != key,
                    )
                ).first()
                if other is not None:
                    problems.append(
                        f"approvers.{key}.public_key: the same key is already registered for {other.id}; "
                        f"{other.id} and {key} must each have their own key"
                    )
                continue
            if not _live(conn, ref_section, ref_id):
                problems.append(f"{section}.{key}.{_dangling(field, ref_section, ref_id)}")
        if section == "approvers" and _normalised_key(record["public_key"]) is None:
            problems.append(f"approvers.{key}.public_key: not a valid Ed25519 key")
        other_section = {"identities": "workloads", "workloads": "identities"}.get(section)
        if other_section is not None and _live(conn, other_section, key):
            problems.append(f"{key}: defined both as an identity and as a workload; ids must be unique")
        if problems:
            raise ValidationError("inventory record", problems)

    def delete(self, section: str, key: str) -> ChangeResult:
        """Delete one record; refused while another record still refers to it (the field is named)."""
        _check_section(section)
        refs = t.inventory_refs.c
        with self._write() as w:
            if not _live(w.conn, section, key):
                raise NotFoundError(f"no {section} record {shorten(key, 60)!r} in the database inventory")
            holders = w.conn.execute(
                sa.select(refs.section, refs.id, refs.field)
                .where(refs.ref_section == section, refs.ref_id == key)
                .order_by(refs.section, refs.id, refs.field)
                .limit(11)
            ).all()
            if holders:
                shown = [f"{s}.{i}.{f}: still refers to {section}.{key}" for s, i, f in holders[:10]]
                if len(holders) > 10:
                    shown.append("... and more")
                raise ValidationError("inventory delete", shown, code="dangling_reference")
            version = w.next(section, key, None)
            w.conn.execute(_update_record, [{"s": section, "i": key, "r": None, "v": version}])
            w.conn.execute(_delete_refs, [{"s": section, "i": key}])
        return ChangeResult(w.version, w.revision, deleted=1)


def _check_section(section: str) -> None:
    if section not in ALL_SECTIONS:
        raise InputError(
            f"unknown inventory section {section!r}; one of {', '.join(ALL_SECTIONS)}", code="invalid_section"
        )


def _live(conn: Connection, section: str, key: str) -> bool:
    r = t.inventory_records.c
    row = conn.execute(sa.select(r.record.is_not(None)).where(r.section == section, r.id == key)).first()
    return bool(row is not None and row[0])


def _ref_rows(section: str, key: str, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"s": section, "i": key, "f": field, "rs": ref_section, "ri": ref_id}
        for field, ref_section, ref_id in outgoing_refs(section, key, record)
    ]


_R = t.inventory_records
_F = t.inventory_refs
_insert_record = _R.insert().values(
    section=sa.bindparam("s"), id=sa.bindparam("i"), record=sa.bindparam("r"), version=sa.bindparam("v")
)
_update_record = (
    _R.update()
    .where(_R.c.section == sa.bindparam("s"), _R.c.id == sa.bindparam("i"))
    .values(record=sa.bindparam("r"), version=sa.bindparam("v"))
)
_delete_refs = _F.delete().where(_F.c.section == sa.bindparam("s"), _F.c.id == sa.bindparam("i"))
_insert_ref = _F.insert().values(
    section=sa.bindparam("s"),
    id=sa.bindparam("i"),
    field=sa.bindparam("f"),
    ref_section=sa.bindparam("rs"),
    ref_id=sa.bindparam("ri"),
)


# The bulk path of an import: plain DB-API executemany on the transaction's
# own connection. SQLAlchemy's per-row parameter processing was two thirds of
# an import of 10^5 records; these statements bind only strings and integers.
_UPDATE_RECORD = "UPDATE inventory_records SET record = ?, version = ? WHERE section = ? AND id = ?"
_DELETE_REFS = "DELETE FROM inventory_refs WHERE section = ? AND id = ?"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _rows(conn: Connection, sql: str) -> Iterator[tuple[Any, ...]]:
    """Every row of a whole-table read, through the DB-API cursor (no per-row SQLAlchemy objects)."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
        while True:
            rows = cursor.fetchmany(_BATCH)
            if not rows:
                return
            yield from rows
    except conn.dialect.loaded_dbapi.Error as exc:
        raise StorageError(f"cannot read the inventory: {_first_line(exc)}") from exc
    finally:
        cursor.close()


_SECTION_ROWS = "SELECT id, record FROM inventory_records WHERE section = ? AND record IS NOT NULL"
_STRAY_ROW = (
    "SELECT section, id FROM inventory_records WHERE record IS NOT NULL AND section NOT IN ("  # noqa: S608
    + ", ".join(f"'{section}'" for section in ALL_SECTIONS) + ") LIMIT 1"
)


def _all_rows(conn: Connection, sql: str, params: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    """Every row of a read in one list, through the DB-API cursor (one fetch; the caller holds them all anyway)."""
    if params and conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    except conn.dialect.loaded_dbapi.Error as exc:
        raise StorageError(f"cannot read the inventory: {_first_line(exc)}") from exc
    finally:
        cursor.close()


def _bulk_insert(conn: Connection, table: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert many rows: COPY on PostgreSQL (one stream instead of a round trip per row), executemany on SQLite."""
    if not rows:
        return
    names = ", ".join(columns)
    if conn.dialect.name != "postgresql":
        _bulk(conn, f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in columns)})", rows)  # noqa: S608
        return
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise StorageError(f"cannot write the inventory: {_first_line(exc)}") from exc
    finally:
        cursor.close()


def _bulk(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    cursor = conn.connection.cursor()
    try:
        for start in range(0, len(rows), _BATCH):
            cursor.executemany(sql, rows[start:start + _BATCH])
    except conn.dialect.loaded_dbapi.Error as exc:
        raise StorageError(f"cannot write the inventory: {_first_line(exc)}") from exc
    finally:
        cursor.close()


def _check_changes(
    index: FactIndex,
    changes: Sequence[Change],
    holders: Callable[[str, str], Sequence[tuple[str, str, str]]] | None = None,
) -> list[str]:
    """Problems with changed records, checked as an import checks them, by key (never the whole inventory).

    Changes written through hitlgate were checked when written; this holds
    rows written straight into the database to the same rules before the
    index trusts them. A deleted record still referred to by a record that
    stays is refused too (``holders`` reads the recorded references by key),
    or a running replica would go on without the record while a restarted
    one refuses the whole inventory.
    """
    problems: list[str] = []
    after = {(section, key): record for section, key, record in changes}
    for section, key, record in changes:
        if record is None and holders is not None and section in ("teams", "workloads", "partners"):
            for h_section, h_key, field in holders(section, key):
                if (h_section, h_key) in after:
                    now = after[(h_section, h_key)]
                    if now is None or (field, section, key) not in outgoing_refs(h_section, h_key, now):
                        continue
                elif index.record(h_section, h_key) is None:
                    continue
                problems.append(f"{h_section}.{h_key}.{field}: still refers to {section}.{key}, which was deleted")
            continue
        if record is None or section == "protected":
            continue
        found = schemas.check("inventory", {section: {key: record}})
        if found:
            problems.extend(found)
            continue
        if section == "approvers" and _normalised_key(record["public_key"]) is None:
            problems.append(f"approvers.{key}.public_key: not a valid Ed25519 key")
        for field, ref_section, ref_id in outgoing_refs(section, key, record):
            if ref_section == "approver_key":
                continue
            if index.record(ref_section, ref_id) is None and after.get((ref_section, ref_id)) is None:
                problems.append(f"{section}.{key}.{_dangling(field, ref_section, ref_id)}")
    return problems


class DatabaseFacts:
    """The decider's live :class:`~hitlgate.engine.decide.facts.FactIndex` of a database inventory.

    A :class:`~hitlgate.engine.decide.facts.FactSource`. A background thread polls
    the database every :data:`POLL_INTERVAL` seconds (one indexed read of
    the meta row; the changed rows only when the version moved) and applies
    the changes to the index in place, under the index's lock, so a reader
    sees a change set whole or not at all. :meth:`current` only returns the
    index: no decision waits for the database. With ``background=False``
    (or a zero interval) :meth:`current` polls itself when the interval has
    passed, one thread at a time.

    Fail closed: :meth:`current` raises
    :class:`~hitlgate.errors.BackendUnavailable` (every decision is a
    ``deny``) when the last poll failed, or when no poll succeeded for
    :data:`STALE_AFTER` seconds (the database hangs, the thread is gone), since a
    change that should have reached the decision within a second may be
    missing. After a ``fork`` the thread is started again in the child.
    """

    def __init__(
        self,
        db: InventoryDB,
        *,
        poll_interval: float = POLL_INTERVAL,
        background: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.poll_interval = poll_interval
        self._monotonic = monotonic
        self._poll_lock = threading.Lock()
        self._failure: StorageError | PolicyError | None = None
        try:
            self._index, self.version, self._texts = db._load()
            self._digest = db.loaded_digest
        except StorageError as exc:
            raise BackendUnavailable(f"cannot read the inventory from the database: {exc}") from exc
        except PolicyError as exc:
            # A broken inventory is a broken pack: every decision is a
            # fail-closed deny naming it (as with a broken file), not a crash.
            # Polls start from version 0, so a fix reaches the index whole.
            from hitlgate.engine.decide.facts import FactIndex

            log.error("the inventory in the database is invalid; every decision fails closed: %s", exc)
            self._digest = ContentDigest()
            self._texts = {section: TextRecords() for section in SECTIONS}
            self._index, self.version = FactIndex({**self._texts}, self._digest.revision), 0
            self._failure = exc
        self._polled = monotonic()
        self._background = background and poll_interval > 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        if self._background:
            self._start()

    @classmethod
    def open(cls, url: str, **kwargs: Any) -> DatabaseFacts:
        """Open the store at ``url`` and load its inventory."""
        return cls(InventoryDB.open(url), **kwargs)

    def _start(self) -> None:
        # The thread holds the facts only weakly between polls, so facts
        # nobody uses any more are collected and their thread ends.
        self._thread = threading.Thread(
            target=_poll_loop, args=(weakref.ref(self), self._stop, self.poll_interval),
            name="hitlgate-inventory-poll", daemon=True,
        )
        self._thread.start()
        # Facts collected without close() stop their thread at once, not at its next wake-up
        # (the callback holds the event, never the facts).
        weakref.finalize(self, self._stop.set)

    def current(self) -> FactIndex:
        """The index as of the last poll (at most :data:`POLL_INTERVAL` old)."""
        if not self._background:
            if self._monotonic() - self._polled >= self.poll_interval and self._poll_lock.acquire(blocking=False):
                try:
                    self._poll()
                finally:
                    self._poll_lock.release()
        elif self._pid != os.getpid() or (self._thread is not None and not self._thread.is_alive()):
            # A forked child has no poll thread (threads do not survive fork), nor a usable pool.
            with self._poll_lock:
                if self._pid != os.getpid():
                    self.db.store.engine.dispose(close=False)
                    self._pid = os.getpid()
                    self._stop = threading.Event()
                    self._start()
                elif self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
                    self._start()
        return self._checked()

    def refresh(self) -> FactIndex:
        """Poll now, whatever the interval (tests; after a write in this process)."""
        with self._poll_lock:
            self._poll()
        return self._checked()

    def _checked(self) -> FactIndex:
        if isinstance(self._failure, PolicyError):
            raise self._failure
        if self._failure is not None:
            raise BackendUnavailable(f"cannot read the inventory from the database: {self._failure}")
        stale = self._monotonic() - self._polled
        if self._background and stale > STALE_AFTER:
            raise BackendUnavailable(
                f"the inventory was last read from the database {stale:.1f} s ago (the database does not "
                "answer); a change may be missing"
            )
        if self.version == 0:
            # As with files: an inventory that was never loaded would make every target unknown.
            raise PolicyError(
                f"the inventory in {self.db.store.url_for_people} is empty: nothing was ever imported "
                "(run `hitlgate inventory import FILE...`, or set inventory.source: files)"
            )
        return self._index

    def _poll(self) -> None:
        try:
            stored, version, _ = self.db._stored_changes_since(self.version)
            changes = [(s, k, None if x is None else _parse_row(s, k, x)) for s, k, x in stored]
            if version != self.version:
                problems = _check_changes(self._index, changes, self.db.holders)
                if problems:
                    raise _invalid(problems)
        except (StorageError, PolicyError) as exc:
            if self._failure is None or str(self._failure) != str(exc):
                log.error("cannot poll the database inventory; decisions fail closed: %s", exc)
            self._failure = exc
            return
        if self._failure is not None:
            log.warning("the database inventory answers again")
        self._failure = None
        if version != self.version:
            # The revision decisions record is the digest of the records
            # held, moved change by change (see ContentDigest); the index
            # keeps each row's stored text, the text the digest covers.
            self._digest.change([
                (s, k, self._text(s, k), _PROTECTED if s == "protected" and x is not None else x)
                for s, k, x in stored
            ])
            self._index.apply(changes, self._digest.revision, stored={(s, k): x for s, k, x in stored if x})
            log.info("inventory: %d change(s) applied, version %d -> %d", len(changes), self.version, version)
            self.version = version
        self._polled = self._monotonic()

    def _text(self, section: str, key: str) -> str | None:
        """The stored text of a record the index holds now (None if it holds none)."""
        if section == "protected":
            return _PROTECTED if self._index.record(section, key) is not None else None
        return self._texts[section].text(key)

    def close(self) -> None:
        """Stop polling and close the store."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.db.close()


def _poll_loop(ref: weakref.ref[DatabaseFacts], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        facts = ref()
        if facts is None:
            return
        with facts._poll_lock:
            facts._poll()
        del facts


_SHARED: weakref.WeakValueDictionary[str, DatabaseFacts] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def shared_database_facts(url: str) -> DatabaseFacts:
    """One :class:`DatabaseFacts` per database URL in the process, shared by the backend and the approver registry.

    One index in memory and one poller, whatever the number of users; an
    entry lives as long as someone holds it.
    """
    with _SHARED_LOCK:
        facts = _SHARED.get(url)
        if facts is None:
            facts = DatabaseFacts.open(url)
            _SHARED[url] = facts
        return facts


"""The inventory as an index: a target's neighbourhood, found by key.

A decision reads the facts about one target: the target's own record, the
workloads that use it, its partner, the teams that own any of these, the
approvers who are members of those teams, and whether the target is
protected. :class:`FactIndex` holds the validated inventory in dicts keyed
by id and builds that *neighbourhood* with a fixed number of lookups per
record in it, so a decision costs the same with 100 identities or
1,000,000 (Contract 1 of issue 9; see DESIGN.md).

The neighbourhood has the same shape as the whole inventory document, so a
policy that read ``data.inventory`` reads ``input.inventory`` unchanged:

* ``identities``: ``{T: record}`` when T is an identity, else ``{}``;
* ``workloads``: ``{T: record}`` when T is a workload, plus every workload
  in the identity's ``used_by``;
* ``partners``: the identity's ``partner``;
* ``teams``: every team named as ``owner`` by the records above;
* ``approvers``: every approver who is a member of one of those teams;
* ``protected``: ``[T]`` when T is protected, else ``[]``.

A backend passes only the sections its policy's modules can read
(:meth:`FactIndex.snapshot` with ``sections``, from
:func:`hitlgate.engine.decide._regoscan.inventory_sections_read`): the bundled
pack never reads ``approvers``, so its decisions are evaluated without them.

Records are shared with the index, not copied: nothing may mutate a record
it got from here (the engine only serialises them into the policy input).

The index takes ownership of the document it is built from; :meth:`apply`
changes it in place, one record at a time, so an inventory kept in a
database (or a file that changed) updates without rebuilding anything else.
Reads and changes are serialised by one lock, so a reader never sees half of
a change set, and :meth:`snapshot` returns a neighbourhood together with the
revision it belongs to.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hitlgate.engine.decide.inventory import (
    Approver,
    Inventory,
    ParsedFiles,
    decode_public_key,
    load_inventory,
)
from hitlgate.engine.decide.policy import Reloading, inventory_watched_paths
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from hitlgate.engine.config import Config

#: The keyed sections of an inventory document.
RECORD_SECTIONS = ("teams", "workloads", "partners", "identities", "approvers")
#: Every section a change may name.
CHANGE_SECTIONS = (*RECORD_SECTIONS, "protected")

#: One change: (section, id, record), record None to delete; for "protected", True or None.
Change = tuple[str, str, Any]


class FactIndex:
    """The inventory, indexed by id, answering neighbourhood queries in O(neighbourhood)."""

    def __init__(self, document: Mapping[str, Any], revision: str) -> None:
        """Index ``document`` (a merged, validated inventory) under ``revision``.

        The section mappings are kept as they are (not copied): the index
        owns them from now on and :meth:`apply` changes them in place.
        """
        self._lock = threading.RLock()
        self._revision = revision
        self._sections: dict[str, MutableMapping[str, Any]] = {}
        for section in RECORD_SECTIONS:
            records = document.get(section)
            self._sections[section] = records if isinstance(records, MutableMapping) else dict(records or {})
        # Insertion-ordered set of protected ids (a dict, so membership is O(1)).
        self._protected: dict[str, bool] = dict.fromkeys(document.get("protected") or (), True)
        # team -> names of approvers who are members of it (insertion-ordered).
        self._members: dict[str, dict[str, bool]] = {}
        for name, rec in self._sections["approvers"].items():
            self._join(name, rec)
        self._approvers: dict[str, Approver] | None = None

    # -- reading ---------------------------------------------------------------

    def current(self) -> FactIndex:
        """The index itself: a fixed index is a :class:`FactSource` that never changes."""
        return self

    @property
    def revision(self) -> str:
        """The inventory revision (``sha256:<hex>``) the index holds now."""
        return self._revision

    def neighbourhood(self, target: str) -> dict[str, Any]:
        """The facts a decision about ``target`` may read (see the module docstring)."""
        return self.snapshot(target)[0]

    def snapshot(self, target: str, sections: frozenset[str] | None = None) -> tuple[dict[str, Any], str]:
        """``(neighbourhood(target), revision)`` read together, never across a change.

        ``sections``: only these sections of the neighbourhood (None: all);
        a backend leaves out what its policy cannot read (see
        :func:`hitlgate.engine.decide._regoscan.inventory_sections_read`).
        """
        with self._lock:
            hood = self._neighbourhood(target, sections is None or "approvers" in sections)
            revision = self._revision
        if sections is not None:
            hood = {k: v for k, v in hood.items() if k in sections}
        return hood, revision

    def _neighbourhood(self, target: str, with_approvers: bool = True) -> dict[str, Any]:
        sections = self._sections
        all_workloads = sections["workloads"]
        all_partners = sections["partners"]
        all_teams = sections["teams"]
        all_approvers = sections["approvers"]
        identities: dict[str, Any] = {}
        workloads: dict[str, Any] = {}
        partners: dict[str, Any] = {}
        owners: list[str] = []
        identity = sections["identities"].get(target)
        if identity is not None:
            identities[target] = identity
            owners.append(identity["owner"])
            for wid in identity.get("used_by") or ():
                rec = all_workloads.get(wid)
                if rec is not None:
                    workloads[wid] = rec
                    owners.append(rec["owner"])
            pid = identity.get("partner")
            if pid is not None:
                rec = all_partners.get(pid)
                if rec is not None:
                    partners[pid] = rec
                    owners.append(rec["owner"])
        workload = all_workloads.get(target)
        if workload is not None:
            workloads[target] = workload
            owners.append(workload["owner"])
        teams: dict[str, Any] = {}
        approvers: dict[str, Any] = {}
        for team in owners:
            if team in teams:
                continue
            rec = all_teams.get(team)
            if rec is not None:
                teams[team] = rec
            if not with_approvers:
                continue
            for name in self._members.get(team, ()):
                if name not in approvers:
                    approvers[name] = all_approvers[name]
        return {
            "identities": identities,
            "workloads": workloads,
            "partners": partners,
            "teams": teams,
            "approvers": approvers,
            "protected": [target] if target in self._protected else [],
        }

    def record(self, section: str, key: str) -> Any:
        """One record by section and id, or None."""
        if section == "protected":
            return True if key in self._protected else None
        return self._sections[section].get(key)

    @property
    def approvers(self) -> dict[str, Approver]:
        """The registered approvers by name (decoded once per change of the approvers section)."""
        with self._lock:
            if self._approvers is None:
                self._approvers = {
                    name: Approver(
                        name=name,
                        roles=frozenset(rec["roles"]),
                        teams=frozenset(rec["teams"]),
                        public_key=decode_public_key(rec["public_key"]),
                    )
                    for name, rec in self._sections["approvers"].items()
                }
            return self._approvers

    def counts(self) -> dict[str, int]:
        """How many records each section holds."""
        out = {section: len(records) for section, records in self._sections.items()}
        out["protected"] = len(self._protected)
        return out

    # -- changing --------------------------------------------------------------

    def apply(
        self, changes: Iterable[Change], revision: str, *, stored: Mapping[tuple[str, str], str] | None = None
    ) -> None:
        """Apply ``(section, id, record_or_None)`` changes in order and move to ``revision``.

        A record replaces the one under its id; None deletes it. For
        ``protected`` the record is True (protect) or None (unprotect). The
        caller validates records and references first: the index stores
        what it is given. The whole change set is applied under the lock, so
        a reader sees either none or all of it. ``stored``: the stored text
        of each record, set instead of the record into sections that keep
        records as text (:class:`~hitlgate.engine.decide.inventory_db.TextRecords`).
        """
        changes = list(changes)
        for section, key, _ in changes:
            if section not in CHANGE_SECTIONS:
                raise ValueError(f"unknown inventory section {section!r} in a change to {key!r}")
        with self._lock:
            for section, key, record in changes:
                if section == "protected":
                    if record is None:
                        self._protected.pop(key, None)
                    else:
                        self._protected[key] = True
                    continue
                records = self._sections[section]
                if section == "approvers":
                    old = records.get(key)
                    if old is not None:
                        self._leave(key, old)
                    self._approvers = None
                if record is None:
                    records.pop(key, None)
                else:
                    records[key] = stored.get((section, key), record) if stored else record
                    if section == "approvers":
                        self._join(key, record)
            self._revision = revision

    def _join(self, name: str, rec: Mapping[str, Any]) -> None:
        for team in rec.get("teams") or ():
            self._members.setdefault(team, {})[name] = True

    def _leave(self, name: str, rec: Mapping[str, Any]) -> None:
        for team in rec.get("teams") or ():
            members = self._members.get(team)
            if members is not None:
                members.pop(name, None)
                if not members:
                    del self._members[team]


@runtime_checkable
class FactSource(Protocol):
    """Where a backend gets the current :class:`FactIndex` (inventory files, or the database).

    ``current()`` is called once per decision: it must be cheap when nothing
    changed (a few ``stat`` calls, or a poll of a change feed) and must raise
    a :class:`~hitlgate.errors.HitlgateError` while the inventory is broken,
    so that decisions fail closed.
    """

    def current(self) -> FactIndex:
        """The index to decide with now."""
        ...


class FileFacts:
    """The index of inventory files (YAML or JSON Lines), rebuilt when a file changes.

    Rebuilding the index never touches the policy: a backend keeps its
    compiled modules. Raises the load error (a
    :class:`~hitlgate.errors.ValidationError` or
    :class:`~hitlgate.errors.PolicyError`) while the files are broken.
    """

    def __init__(self, data_paths: Sequence[Path], *, limits: Limits = DEFAULT_LIMITS, watch: bool = True) -> None:
        self.data_paths = tuple(Path(p) for p in data_paths)
        self._limits = limits
        # The files of the last good load: a reload parses only the files whose bytes changed.
        self._parsed = ParsedFiles()
        self._loaded: Reloading[tuple[Inventory, FactIndex]] = Reloading(
            self._load, lambda: inventory_watched_paths(self.data_paths), what="inventory", watch=watch
        )

    def _load(self) -> tuple[Inventory, FactIndex]:
        inventory = load_inventory(self.data_paths, limits=self._limits, parsed=self._parsed)
        return inventory, FactIndex(inventory.document, inventory.revision)

    def current(self) -> FactIndex:
        """The index of the files as they are now."""
        return self._loaded.get()[1]

    @property
    def inventory(self) -> Inventory:
        """The loaded inventory (documents and sources) the index was built from."""
        return self._loaded.get()[0]


_SHARED: weakref.WeakValueDictionary[tuple[Any, ...], FileFacts] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def shared_file_facts(data_paths: Sequence[Path], *, limits: Limits = DEFAULT_LIMITS) -> FileFacts:
    """One :class:`FileFacts` per (data paths, limits) in the process, shared by every user.

    The backend and the approver registry read the same files: loading them
    once keeps start time and memory at one inventory, whatever the number
    of users. An entry lives as long as someone holds it.
    """
    key = (tuple(str(Path(p).resolve()) for p in data_paths), limits)
    with _SHARED_LOCK:
        facts = _SHARED.get(key)
        if facts is None:
            facts = FileFacts(data_paths, limits=limits)
            _SHARED[key] = facts
        return facts


def facts_from_config(config: Config) -> FactSource:
    """The fact source the configuration names: inventory files (the default) or the database.

    ``inventory: {source: database}`` reads the inventory from the state
    database (``hitlgate inventory``), kept current by its change feed.
    """
    if config.inventory_source == "database":
        from hitlgate.engine.decide.inventory_db import shared_database_facts

        return shared_database_facts(config.state_url)
    return shared_file_facts(config.data_paths, limits=config.limits)

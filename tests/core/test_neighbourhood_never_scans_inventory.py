"""A decision's facts are found by key: the index never scans the inventory.

The structural proof: after the index is built, every section is a mapping
that raises on iteration, ``len``, ``keys``, ``values`` and ``items``; only
keyed reads (``[]``, ``get``, ``in``) work. A neighbourhood that scanned a
section (to find the workloads of a target, an owner's approvers, or whether
the target is protected) would raise instead of answering.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine.decide.facts import FactIndex
from hitlgate.engine.decide.inventory import load_inventory

EXAMPLE = Path(__file__).resolve().parents[2] / "policies" / "data"


class ScanError(AssertionError):
    """Raised when a section is iterated after the index is armed."""


class Tripwire(MutableMapping[str, Any]):
    """A dict that allows keyed access only, once armed."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self.armed = False

    def _scan(self) -> None:
        if self.armed:
            raise ScanError("a section was scanned")

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:  # noqa: D102 - dict.get.
        return self._data.get(key, default)

    def __iter__(self) -> Iterator[str]:
        self._scan()
        return iter(self._data)

    def __len__(self) -> int:
        self._scan()
        return len(self._data)

    def keys(self) -> Any:  # noqa: D102 - guarded.
        self._scan()
        return self._data.keys()

    def values(self) -> Any:  # noqa: D102 - guarded.
        self._scan()
        return self._data.values()

    def items(self) -> Any:  # noqa: D102 - guarded.
        self._scan()
        return self._data.items()


def _brute_force(doc: dict[str, Any], target: str) -> dict[str, Any]:
    """The neighbourhood computed by scanning everything (the specification)."""
    ids = {k: v for k, v in doc["identities"].items() if k == target}
    wls = {k: v for k, v in doc["workloads"].items() if k == target}
    parts: dict[str, Any] = {}
    for rec in ids.values():
        wls.update({w: doc["workloads"][w] for w in rec.get("used_by", [])})
        if "partner" in rec:
            parts[rec["partner"]] = doc["partners"][rec["partner"]]
    owners = {r["owner"] for r in (*ids.values(), *wls.values(), *parts.values())}
    return {
        "identities": ids,
        "workloads": wls,
        "partners": parts,
        "teams": {t: r for t, r in doc["teams"].items() if t in owners},
        "approvers": {a: r for a, r in doc["approvers"].items() if owners.intersection(r["teams"])},
        "protected": [p for p in doc["protected"] if p == target],
    }


def _armed_index() -> tuple[FactIndex, dict[str, Any], list[Tripwire]]:
    doc = load_inventory([EXAMPLE]).document
    plain = {s: dict(doc[s]) for s in ("identities", "workloads", "partners", "teams", "approvers")}
    plain["protected"] = list(doc["protected"])
    wires = {s: Tripwire(dict(plain[s])) for s in ("identities", "workloads", "partners", "teams", "approvers")}
    index = FactIndex({**wires, "protected": list(plain["protected"])}, "sha256:" + "0" * 64)
    for wire in wires.values():
        wire.armed = True
    return index, plain, list(wires.values())


def test_tripwire_catches_a_scan() -> None:
    """The instrument works: iterating an armed section raises."""
    wire = Tripwire({"a": 1})
    wire.armed = True
    with pytest.raises(ScanError, match="a section was scanned"):
        list(wire)
    with pytest.raises(ScanError, match="a section was scanned"):
        wire.items()


def test_neighbourhood_of_every_target_without_scanning() -> None:
    index, plain, _ = _armed_index()
    targets = [*plain["identities"], *plain["workloads"], *plain["protected"], "no-such-target", ""]
    assert len(plain["identities"]) > 5 and plain["protected"]
    for target in targets:
        assert index.neighbourhood(target) == _brute_force(plain, target), target


def test_changes_apply_without_scanning() -> None:
    """apply() updates records and the team -> approvers map by key, too."""
    index, plain, _ = _armed_index()
    ident = next(k for k, v in plain["identities"].items() if v.get("used_by"))
    new_team = next(t for t in plain["teams"] if t != plain["identities"][ident]["owner"])
    changed = {**plain["identities"][ident], "owner": new_team}
    approver = next(iter(plain["approvers"]))
    moved = {**plain["approvers"][approver], "teams": [new_team]}
    index.apply(
        [("identities", ident, changed), ("approvers", approver, moved), ("protected", ident, True)],
        "sha256:" + "1" * 64,
    )
    plain["identities"][ident] = changed
    plain["approvers"][approver] = moved
    plain["protected"].append(ident)
    assert index.revision == "sha256:" + "1" * 64
    got = index.neighbourhood(ident)
    assert got == _brute_force(plain, ident)
    assert approver in got["approvers"] and got["protected"] == [ident]

    index.apply([("identities", ident, None), ("protected", ident, None)], "sha256:" + "2" * 64)
    del plain["identities"][ident]
    plain["protected"].remove(ident)
    assert index.neighbourhood(ident) == _brute_force(plain, ident)
    assert index.neighbourhood(ident)["identities"] == {}


def test_removed_approver_leaves_every_team() -> None:
    index, plain, wires = _armed_index()
    name, owned = next(
        (n, w) for n, r in plain["approvers"].items() for w, v in plain["workloads"].items() if v["owner"] in r["teams"]
    )
    assert name in index.neighbourhood(owned)["approvers"]
    index.apply([("approvers", name, None)], "sha256:" + "3" * 64)
    assert name not in index.neighbourhood(owned)["approvers"]
    # The approver registry is the whole section by definition: reading it may iterate.
    for wire in wires:
        wire.armed = False
    assert name not in index.approvers and index.approvers


def test_unknown_section_is_refused() -> None:
    index, _, _ = _armed_index()
    with pytest.raises(ValueError, match="unknown inventory section 'secrets'"):
        index.apply([("secrets", "x", {})], "sha256:" + "4" * 64)
    assert index.revision == "sha256:" + "0" * 64

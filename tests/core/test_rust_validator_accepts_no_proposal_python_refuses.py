"""The Rust validator answers first for proposals; it must accept nothing the Python validators refuse.

``schemas.check("proposal", ...)`` takes ``jsonschema_rs``'s "valid" as the
answer and hands everything else to fastjsonschema (and the jsonschema
validators that word the errors). So the only way it could let a bad
proposal through is a proposal Rust accepts and Python refuses: the seeded
mutations below (wrong types, over-long and newline-ended ids, extra and
missing fields, odd Unicode) look for one, and the named cases hold the
differences we know of (Python's ``$`` also matches before a final newline).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import fastjsonschema
import pytest

from hitlgate.engine.decide import schemas
from hitlgate.engine.decide.proposal import Proposal
from hitlgate.errors import ValidationError

_VALUES: list[Any] = [
    "", "a", "a\n", "\n", "x" * 201, "x" * 5000, "é" * 200, "ab c", "a/b:c@d", "ü" * 199, "𝄞" * 150,
    0, 1, -1, 0.5, 1.5, True, False, None, [], {}, ["a"], {"a": 1}, 10**30,
]


def _base(i: int) -> dict[str, Any]:
    return {
        "action": {"type": ["rotate_api_key", "revoke_secret", "isolate_workload"][i % 3],
                   "target": f"svc-{i}", "parameters": {"n": i, "why": "rotate"}},
        "requester": {"id": f"agent-{i % 5}", "kind": ["agent", "human", "service"][i % 3]},
        "justification": "leaked in a public repository",
        "incident": f"INC-{i}",
        "confidence": 0.5,
    }


def _paths(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*path, i))


def _mutated(rnd: random.Random) -> dict[str, Any]:
    doc = _base(rnd.randrange(30))
    for _ in range(rnd.randint(1, 3)):
        path = rnd.choice([p for p in _paths(doc) if p])
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        roll = rnd.random()
        if roll < 0.6:
            parent[path[-1]] = copy.deepcopy(rnd.choice(_VALUES))
        elif roll < 0.8 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rnd.choice(["extra", "inventory", "", "a b", "x" * 300])] = copy.deepcopy(rnd.choice(_VALUES))
    return doc


def _python_accepts(doc: Any) -> bool:
    try:
        schemas._fast("proposal")(doc)
    except fastjsonschema.JsonSchemaException:
        return False
    return not schemas.problems("proposal", doc)


def test_the_rust_validator_is_asked_first_for_proposals() -> None:
    assert "proposal" in schemas._BULK
    assert schemas._bulk_valid("proposal", _base(1))


def test_no_mutated_proposal_is_accepted_by_rust_alone() -> None:
    rnd = random.Random(20261128)  # noqa: S311 - a fixed seed, for reproducible mutations
    accepted = refused = 0
    for _ in range(4000):
        doc = _mutated(rnd)
        rust = schemas._bulk_valid("proposal", doc)
        python = _python_accepts(doc)
        assert not (rust and not python), doc
        # What check() answers is what the Python validators answer.
        assert (schemas.check("proposal", doc) == []) == python, doc
        accepted += python
        refused += not python
    # The mutations reach both sides of the line (the seed fixes the counts).
    assert accepted > 300 and refused > 2000


@pytest.mark.parametrize("change", [
    lambda d: d["action"].update(target="svc-1\n"),
    lambda d: d["requester"].update(id="agent-1\n"),
    lambda d: d["action"].update(target="x" * 201),
    lambda d: d.update(inventory={"identities": {}}),
    lambda d: d["action"].update(type="rotate_api_key\n"),
    lambda d: d.update(confidence=True),
    lambda d: d.update(confidence=1.5),
], ids=["target-newline", "requester-newline", "target-too-long", "inventory", "type-newline", "bool-confidence",
        "confidence-over-1"])
def test_known_differences_are_refused_through_the_engine(change: Any) -> None:
    doc = _base(1)
    change(doc)
    assert not _python_accepts(doc)
    assert not schemas._bulk_valid("proposal", doc)
    with pytest.raises(ValidationError):
        Proposal.from_dict(doc)

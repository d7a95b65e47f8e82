"""The diff evaluates proposals that differ only in fields the pack cannot read once: never wrongly.

A field counts as read when its name occurs in the code or a string, or
when its parent (or the whole input) is used without naming a field, so a
pack that could read a field always gets it in the cache key.
"""

from __future__ import annotations

import pytest

from hitlgate.engine._resources import bundled_policy_dir
from hitlgate.engine.decide._policydiff import Outcome, classify, proposal_fields_read


def test_bundled_pack_reads_only_the_requester_kind() -> None:
    sources = [p.read_text() for p in bundled_policy_dir().glob("*.rego") if not p.name.endswith("_test.rego")]
    # "incident" in a control's text and "id" as a key of each control are strings, not reads.
    assert proposal_fields_read(sources) == {"requester.kind"}


@pytest.mark.parametrize(
    ("source", "read"),
    [
        ("x if input.justification == \"y\"", {"justification"}),
        ("x := input.requester.id", {"requester.id"}),
        ("x := object.get(input, \"incident\", \"\")", None),
        ("x := input", None),
        ("x := input[k]", None),
        ("x := json.marshal(input)", None),
        ("x := input.requester", {"requester.id", "requester.kind"}),
        ("x := count(input.requester[_])", {"requester.id", "requester.kind"}),
        ("x := walk(input.action, y)", {"action.parameters"}),
        ("x := input.action.parameters.labels", {"action.parameters"}),
        ("f := \"confidence\"\nx := input[f]", None),
        ("# input.evidence is never read\nx := 1", set()),
        ("x := \"mentions evidence in a string\"", set()),
        ("x := input.requester[\"id\"]", {"requester.id", "requester.kind"}),
        ("x := object.get(input.requester, \"id\", \"\")", {"requester.id", "requester.kind"}),
        ("x := input[\"incident\"]", None),
    ],
)
def test_fields_read(source: str, read: set[str] | None) -> None:
    found = proposal_fields_read([f"package hitlgate\n\n{source}\n"])
    assert found == (None if read is None else frozenset(read))


def _o(tier: str, required: int = 0, slots: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()) -> Outcome:
    return Outcome(tier, (), (required, slots), 0)


SEC = (("security",), ())
SEC_OR_OWNER = (("security",), ("team-a",))


@pytest.mark.parametrize(
    ("base", "head", "direction"),
    [
        (_o("dual_approval", 2, (SEC, SEC)), _o("single_approval", 1, (SEC,)), "loosening"),
        (_o("deny"), _o("auto_allow"), "loosening"),
        (_o("auto_allow"), _o("deny"), "tightening"),
        (_o("single_approval", 1, (SEC,)), _o("single_approval", 1, (SEC_OR_OWNER,)), "loosening"),
        (_o("single_approval", 1, (SEC_OR_OWNER,)), _o("single_approval", 1, (SEC,)), "tightening"),
        (_o("dual_approval", 2, (SEC, SEC_OR_OWNER)), _o("dual_approval", 2, (SEC, SEC)), "tightening"),
        (_o("dual_approval", 2, (SEC, SEC)), _o("dual_approval", 2, (SEC, (("partner_management",), ()))),
         "changed"),
        (_o("auto_allow"), Outcome("auto_allow", ("irreversible",), (0, ()), 0), "neutral"),
    ],
)
def test_direction_of_a_change(base: Outcome, head: Outcome, direction: str) -> None:
    assert classify(base, head) == direction

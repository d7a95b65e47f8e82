"""Fault: the engine leaves a section of the target's facts out of the input while a rule reads it.

The engine passes only the inventory sections the pack's modules can read
(:func:`hitlgate.engine.decide._regoscan.inventory_sections_read`): the bundled
pack never reads ``approvers``, so they are left out and each decision's
input is a third smaller. Leaving out a section a rule *does* read would
change decisions silently, so every way a module can reach a section -
by name, in a string used as a key, or by any use of the inventory, the
input or ``data`` as a whole - keeps every section.
"""

from __future__ import annotations

import pytest

from hitlgate.engine import Config, Decider
from hitlgate.engine.decide._regopy import RegopyBackend
from hitlgate.engine.decide._regoscan import inventory_sections_read, nondeterministic_calls
from tests.conftest import make_proposal

#: An auto-allowed target of the example inventory; its owner team-data has approvers.
TARGET = "dev-analytics-key"

#: A rule that needs one approval when the owner's team has an approver, reading the approvers as {how}.
READS_APPROVERS = """package hitlgate

has_people if {how}

single_conditions contains "owner_has_people" if {{
\tmutating
\thas_people
}}
"""

HOW = {
    "by name": "count(input.inventory.approvers) > 0",
    "by a computed key": 'count(object.get(input.inventory, concat("", ["appro", "vers"]), {})) > 0',
    "by iterating the inventory": '{ some k; s := input.inventory[k]; startswith(k, "appro"); count(s) > 0 }',
    "through an alias": '{ inv := input.inventory; k := concat("", ["appro", "vers"]); count(inv[k]) > 0 }',
    "through the whole input": (
        '{ walk(input, [p, v]); p[count(p) - 1] == concat("", ["appro", "vers"]); count(v) > 0 }'
    ),
    "through data": 'count(data.hitlgate.inventory[concat("", ["appro", "vers"])]) > 0',
}


@pytest.mark.parametrize("how", list(HOW))
def test_a_rule_that_reads_approvers_still_gets_them(pack_config: Config, how: str) -> None:
    before = Decider.from_config(pack_config).decide(make_proposal("rotate_api_key", TARGET))
    assert before.tier == "auto_allow"
    (pack_config.policy_dir / "people.rego").write_text(READS_APPROVERS.format(how=HOW[how]), encoding="utf-8")
    decision = Decider.from_config(pack_config).decide(make_proposal("rotate_api_key", TARGET))
    assert decision.fail_closed is None, decision.reasons
    assert decision.tier == "single_approval"


def test_the_bundled_pack_gets_no_approvers_and_the_same_decisions() -> None:
    backend = RegopyBackend(Config().policy_dir, list(Config().data_paths))
    document, _ = backend.evaluation_input(make_proposal("rotate_api_key", TARGET))
    assert "approvers" not in document["inventory"]
    assert document["inventory"]["identities"][TARGET]["owner"] == "team-data"
    assert set(document["inventory"]) == {"identities", "workloads", "partners", "teams", "protected"}


@pytest.mark.parametrize(
    "source",
    [
        "package p\nx := input.inventory\n",
        "package p\nx := input\n",
        "package p\nimport input.inventory as inv\ny := inv.identities\n",
        "package p\nx := data\n",
        "package p\nx := data.hitlgate[k]\n",
        "package p\nx := json.marshal(input)\n",
        "package hitlgate\ninventory := input.inventory\nx := inventory[k]\n",
        "package hitlgate\ninventory := input.inventory\nf(i) := i\nx := f(inventory)\n",
    ],
)
def test_any_whole_use_of_the_inventory_keeps_every_section(source: str) -> None:
    assert inventory_sections_read([source]) is None


def test_a_name_in_a_comment_is_no_read_and_a_name_in_a_string_is() -> None:
    base = "package hitlgate\ninventory := input.inventory\nx := inventory.identities[input.action.target]\n"
    assert inventory_sections_read([base + "# inventory.approvers and input are only mentioned here\n"]) == {
        "identities"
    }
    assert "approvers" in (inventory_sections_read([base + 'y := {"approvers": 1}\n']) or ())


def test_nondeterministic_calls_are_found_outside_comments_and_strings() -> None:
    src = 'package p\nt := time.now_ns()\n# rand.intn("x", 1)\ns := "http.send({})"\nr := http.send({"url": "u"})\n'
    assert nondeterministic_calls([src]) == ["time.now_ns", "http.send"]
    assert nondeterministic_calls(["package p\nx := sprintf(\"%v\", [input.a])\n"]) == []

"""Deep nesting: refused as ``too_deep`` without recursion, never a RecursionError or a traceback.

Regression for issue 7 item 2: ``[[[[...]]]]`` 100k deep in a proposal, or
deeply nested YAML in an inventory, raised RecursionError with a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine import Proposal, load_inventory
from hitlgate.engine.decide.scenarios import load_scenarios
from hitlgate.errors import ValidationError
from tests.conftest import make_proposal
from tests.core._hostile import decision_of, project, run

DEEP = 100_000


def test_deep_nesting_json_proposal_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "deep.json"
    f.write_text("[" * 30_000 + "]" * 30_000)  # under the byte limit, so nesting is what refuses it
    result = run(["decide", "--json", str(f)])
    assert result.exit_code == 2
    assert "deep.json: nested deeper than 64 levels (limits.max_depth)" in result.output


def test_deep_nesting_inside_parameters_is_refused_before_parsing() -> None:
    deep = '"parameters": {"x": ' + "[" * 30_000 + "]" * 30_000 + "}"
    text = json.dumps(make_proposal()).replace('"parameters": {}', deep)
    with pytest.raises(ValidationError, match=r"nested deeper than 64 levels") as info:
        Proposal.from_json(text)
    assert info.value.code == "too_deep"


def test_brackets_inside_strings_are_not_nesting(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps(make_proposal(justification="[{" * 1900 + '\\"[')))
    result = run(["decide", "--json", str(f)])
    assert result.exit_code == 4, result.output  # dual approval needed
    assert decision_of(result)["tier"] == "dual_approval"


def test_deep_nesting_dict_from_an_sdk_caller_is_refused() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(DEEP):
        node["x"] = {}
        node = node["x"]
    doc = make_proposal()
    doc["action"]["parameters"] = deep
    with pytest.raises(ValidationError, match=r"action\.parameters\.x\.x.*: nested deeper than 64 levels") as info:
        Proposal.from_dict(doc)
    assert info.value.code == "too_deep"


def test_self_referencing_dict_is_refused_not_looped_over() -> None:
    doc = make_proposal()
    doc["action"]["parameters"]["self"] = doc["action"]["parameters"]
    with pytest.raises(ValidationError, match=r"nested deeper than 64 levels") as info:
        Proposal.from_dict(doc)
    assert info.value.code == "too_deep"


def test_parameters_nested_past_the_schema_depth_are_refused() -> None:
    doc = make_proposal()
    doc["action"]["parameters"] = {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}  # 6 levels: allowed
    Proposal.from_dict(doc)
    doc["action"]["parameters"] = {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}
    with pytest.raises(ValidationError, match=r"action\.parameters\.a\.b\.c\.d\.e\.f: nested too deep"):
        Proposal.from_dict(doc)
    evidence = make_proposal(evidence=[{"a": [[[[[["deep"]]]]]]}])
    with pytest.raises(ValidationError, match=r"evidence\[0\]\.a(\[0\]){5}: nested too deep"):
        Proposal.from_dict(evidence)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("teams: " + "[" * DEEP + "]" * DEEP + "\n", id="flow"),
        pytest.param("teams:\n" + "".join("  " * i + "- \n" for i in range(1, 200)), id="block"),
        pytest.param("teams: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n", id="flow-mappings"),
    ],
)
def test_deep_nesting_yaml_inventory_is_refused(tmp_path: Path, pack_copy: Path, body: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "inventory.yaml").write_text(body)
    refused = r"inventory\.yaml: line \d+, column \d+: nested deeper than 64 levels"
    with pytest.raises(ValidationError, match=refused) as info:
        load_inventory([data])
    assert info.value.code == "too_deep"
    config = project(tmp_path, pack_copy, inventory=body)
    result = run(["decide", "--json", "-"], config=config, stdin=json.dumps(make_proposal()))
    decision = decision_of(result)
    assert decision["tier"] == "deny"
    assert "nested deeper than 64 levels" in " ".join(decision["reasons"])  # type: ignore[arg-type]


def test_deep_nesting_scenario_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text("cases: " + "[" * DEEP + "]" * DEEP + "\n")
    with pytest.raises(ValidationError, match=r"deep\.yaml: line 1, column \d+: nested deeper than 64 levels"):
        load_scenarios([tmp_path])


def test_deep_nesting_audit_export_line_is_refused(tmp_path: Path, pack_copy: Path) -> None:
    export = tmp_path / "export.jsonl"
    export.write_text("[" * DEEP + "]" * DEEP + "\n")
    result = run(["audit", "verify", "--file", str(export)], config=project(tmp_path, pack_copy))
    assert result.exit_code == 3  # an export that cannot be read does not verify
    assert "export.jsonl line 1: nested deeper than 64 levels" in result.output

"""Oversized documents: refused by their byte limit before parsing, or by the schema's limits; never echoed whole.

Regression for issue 7 item 1: a 20 MB proposal was accepted (auto_allow,
stored, 42 MB of database), ~1M keys in ``parameters`` took 20-45 s and
2.5-3 GB, and a 20 MB justification was echoed to stderr in full.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hitlgate.engine import Proposal, load_inventory
from hitlgate.engine.approve.approvals import SignedStatement
from hitlgate.engine.decide.scenarios import load_scenarios
from hitlgate.engine.limits import Limits
from hitlgate.errors import ValidationError
from tests.conftest import make_proposal
from tests.core._hostile import decision_of, project, run

MB = 1024 * 1024


def test_oversized_proposal_file_is_refused_before_parsing(tmp_path: Path) -> None:
    f = tmp_path / "big.json"
    f.write_text(json.dumps(make_proposal(justification="A" * (20 * MB))))
    started = time.monotonic()
    result = run(["decide", "--json", str(f)])
    assert time.monotonic() - started < 5
    assert result.exit_code == 2
    assert "larger than the limit of 65536 bytes" in result.output
    assert "limits.proposal_bytes" in result.output
    assert "AAAAAAAAAA" not in result.output
    assert len(result.output) < 2000


def test_oversized_proposal_on_stdin_is_refused_and_not_stored(tmp_path: Path) -> None:
    config = project(tmp_path, Path(__file__).parents[2] / "policies")
    doc = json.dumps(make_proposal(justification="B" * MB))
    result = run(["propose", "-"], config=config, stdin=doc)
    assert result.exit_code == 2
    assert "stdin: larger than the limit of 65536 bytes" in result.output
    assert "BBBBBBBBBB" not in result.output
    listing = run(["requests", "--json"], config=config)
    assert json.loads(listing.stdout) in ([], {"requests": []})


def test_oversized_justification_in_a_dict_is_not_echoed() -> None:
    # Refused as the same text in a file would be (larger than proposal_bytes), naming where the
    # characters ran out.
    huge = "C" * (20 * MB)
    refused = r"more than \d+ characters in its keys and strings together.*at justification\)"
    with pytest.raises(ValidationError, match=refused) as info:
        Proposal.from_dict(make_proposal(justification=huge))
    assert info.value.code == "input_too_large"
    assert "CCC" not in str(info.value)
    assert len(str(info.value)) < 1000


def test_a_justification_over_the_schema_length_is_named_and_not_echoed() -> None:
    refused = r"justification: 'C+\.\.\.C+' \(30000 characters\) is too long"
    with pytest.raises(ValidationError, match=refused) as info:
        Proposal.from_dict(make_proposal(justification="C" * 30_000))
    assert len(str(info.value)) < 1000


def test_million_keys_in_parameters_are_refused_fast() -> None:
    doc = make_proposal()
    doc["action"]["parameters"] = {f"k{i}": i for i in range(1_000_000)}
    started = time.monotonic()
    with pytest.raises(ValidationError, match=r"more than 32768 values in one document") as info:
        Proposal.from_dict(doc)
    assert info.value.code == "input_too_large"
    assert time.monotonic() - started < 2


def test_schema_limits_on_parameters_and_evidence() -> None:
    doc = make_proposal(evidence=["e"] * 101)
    doc["action"]["parameters"] = {f"k{i}": i for i in range(65)}
    doc["action"]["parameters"]["x" * 200] = 1
    with pytest.raises(ValidationError) as info:
        Proposal.from_dict(doc)
    text = str(info.value)
    assert "evidence: has 101 items, more than allowed (at most 100)" in text
    assert "action.parameters: has 66 properties, more than allowed (at most 64)" in text
    assert "is too long" in text  # the 200-character key name (keys are at most 128)
    long_string = make_proposal()
    long_string["action"]["parameters"] = {"note": "n" * 4097, "list": list(range(257))}
    with pytest.raises(ValidationError, match=r"action\.parameters\.list: has 257 items") as info:
        Proposal.from_dict(long_string)
    assert "(4097 characters) is too long" in str(info.value)


def test_error_messages_never_echo_a_huge_value() -> None:
    doc = make_proposal()
    # Within the characters a proposal may hold (proposal_bytes), so that the schema words every problem.
    doc["action"]["type"] = "t" * 30_000
    doc["k" * 30_000] = 1
    with pytest.raises(ValidationError, match=r"action\.type: 't+\.\.\.t+' is not one of") as info:
        Proposal.from_dict(doc)
    assert len(str(info.value)) < 1500
    assert "were unexpected" in str(info.value) or "was unexpected" in str(info.value)


def test_raising_proposal_bytes_in_config_admits_a_larger_proposal(tmp_path: Path, pack_copy: Path) -> None:
    doc = make_proposal()
    doc["action"]["parameters"] = {f"p{i}": "v" * 3000 for i in range(30)}  # ~90 KiB, within the schema
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc))
    default = project(tmp_path, pack_copy)
    refused = run(["decide", "--json", str(f)], config=default)
    assert refused.exit_code == 2
    assert "larger than the limit of 65536 bytes" in refused.output
    raised = project(tmp_path, pack_copy, config_extra="limits:\n  proposal_bytes: 262144\n")
    allowed = run(["decide", "--json", str(f)], config=raised)
    assert allowed.exit_code == 4, allowed.output  # dual approval needed
    assert decision_of(allowed)["tier"] == "dual_approval"


def test_limits_in_config_are_validated(tmp_path: Path, pack_copy: Path) -> None:
    config = project(tmp_path, pack_copy, config_extra="limits:\n  proposal_bytes: 10\n  bogus: 1\n")
    result = run(["decide", "--json", "-"], config=config, stdin=json.dumps(make_proposal()))
    assert result.exit_code == 2
    assert "limits.proposal_bytes: 10 is less than the minimum of 1024" in result.output
    assert "'bogus' was unexpected" in result.output


def test_oversized_signed_approval_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "signed.json"
    f.write_text(json.dumps({"statement": {"note": "x" * 20_000}, "signature": "y"}))
    config = project(tmp_path, Path(__file__).parents[2] / "policies")
    result = run(["approve", "--signed", str(f)], config=config)
    assert result.exit_code == 2
    assert "larger than the limit of 16384 bytes" in result.output
    assert "limits.approval_bytes" in result.output


def test_oversized_warrant_is_refused(tmp_path: Path) -> None:
    action = tmp_path / "action.json"
    action.write_text(json.dumps(make_proposal()["action"]))
    token = tmp_path / "warrant.jws"
    token.write_text("a" * 140_000 + "." + "b" * 10 + "." + "c" * 10)
    config = project(tmp_path, Path(__file__).parents[2] / "policies")
    result = run(["verify", str(action), "--warrant", str(token)], config=config)
    assert result.exit_code == 2
    assert "larger than the limit of 131072 bytes" in result.output
    literal = run(["verify", str(action), "--warrant", "a" * 140_000], config=config)
    assert literal.exit_code == 2
    assert "limits.warrant_bytes" in literal.output


def test_oversized_inventory_file_is_refused_by_its_configured_limit(tmp_path: Path, pack_copy: Path) -> None:
    inventory = (pack_copy / "data" / "inventory.yaml").read_text()
    with pytest.raises(ValidationError, match=r"inventory\.yaml: larger than the limit of 1024 bytes") as info:
        load_inventory([pack_copy / "data"], limits=Limits(inventory_file_bytes=1024))
    assert info.value.code == "input_too_large"
    config = project(tmp_path, pack_copy, inventory=inventory, config_extra="limits:\n  inventory_file_bytes: 1024\n")
    result = run(["decide", "--json", "-"], config=config, stdin=json.dumps(make_proposal()))
    decision = decision_of(result)
    assert decision["tier"] == "deny"
    assert "larger than the limit of 1024 bytes" in " ".join(decision["reasons"])  # type: ignore[arg-type]


def test_oversized_scenario_file_is_refused(pack_copy: Path) -> None:
    refused = r"larger than the limit of 1024 bytes .*limits\.scenario_file_bytes"
    with pytest.raises(ValidationError, match=refused) as info:
        load_scenarios([pack_copy / "scenarios"], limits=Limits(scenario_file_bytes=1024))
    assert info.value.code == "input_too_large"


def test_oversized_audit_export_line_is_refused(tmp_path: Path, pack_copy: Path) -> None:
    export = tmp_path / "export.jsonl"
    export.write_text('{"record": "event", "x": "' + "z" * (2 * MB) + '"}\n')
    config = project(tmp_path, pack_copy)
    result = run(["audit", "verify", "--file", str(export)], config=config)
    assert result.exit_code == 3  # an export that cannot be read does not verify
    assert "export.jsonl line 1: larger than the limit of 1048576 bytes" in result.output
    assert "zzzzzzzzzz" not in result.output


def test_oversized_signed_statement_from_an_sdk_caller() -> None:
    text = json.dumps({"statement": {"note": "x" * 20_000}, "signature": "y"})
    with pytest.raises(ValidationError, match=r"larger than the limit of 16384 bytes \(20\d\d\d bytes\)") as info:
        SignedStatement.from_json(text)
    assert info.value.code == "input_too_large"


def test_the_approver_registry_reads_the_inventory_under_its_configured_limit(pack_copy: Path) -> None:
    # The registry of who may approve reads the same files as the policy, under the same limits: a
    # configured limit is not dropped for the library default (64 MiB) on this path.
    from hitlgate.engine.approve.approvers import ApproverRegistry

    registry = ApproverRegistry([pack_copy / "data"], limits=Limits(inventory_file_bytes=1024))
    with pytest.raises(ValidationError, match=r"inventory\.yaml: larger than the limit of 1024 bytes") as info:
        registry.all()
    assert info.value.code == "input_too_large"
    assert ApproverRegistry([pack_copy / "data"]).all()  # The same files under the default limit: read.

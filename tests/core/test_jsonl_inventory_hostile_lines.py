"""JSON Lines inventory (a CMDB export): the same facts as YAML, and every bad line named by file:line.

A ``*.jsonl`` file in the data paths holds one record a line. It must load
to exactly the document the YAML form gives, and everything else - a line
that is not JSON, not an object, names no known section, repeats an id,
breaks the schema, hides a NUL or a lone surrogate in an escape, nests too
deep, holds 1e999, is not UTF-8 or is too large - must be refused with the
file and line, so the pack fails closed (policy_broken) until it is fixed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine import Decider
from hitlgate.engine._resources import bundled_data_dir, bundled_policy_dir
from hitlgate.engine.decide._regopy import RegopyBackend
from hitlgate.engine.decide.inventory import load_inventory
from hitlgate.engine.limits import Limits
from hitlgate.errors import ValidationError
from tests.conftest import make_proposal


def _lines(doc: dict[str, Any]) -> list[str]:
    out = []
    for section in ("teams", "workloads", "partners", "identities", "approvers"):
        for key, rec in doc[section].items():
            out.append(json.dumps({"section": section, "id": key, "record": rec}))
    out.extend(json.dumps({"section": "protected", "id": key}) for key in doc["protected"])
    return out


@pytest.fixture
def example() -> dict[str, Any]:
    return dict(load_inventory([bundled_data_dir()]).document)


def _write(tmp_path: Path, lines: list[str] | bytes) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    raw = lines if isinstance(lines, bytes) else "\n".join(lines).encode("utf-8") + b"\n"
    (data / "cmdb.jsonl").write_bytes(raw)
    return data


def test_jsonl_gives_the_same_document_as_yaml(tmp_path: Path, example: dict[str, Any]) -> None:
    lines = _lines(example)
    lines.insert(3, "")  # Blank lines are allowed.
    lines.insert(7, "   ")
    got = load_inventory([_write(tmp_path, lines)])
    assert got.document == example
    assert got.revision.startswith("sha256:") and len(got.revision) == 71


def test_jsonl_decides_like_yaml(tmp_path: Path, example: dict[str, Any]) -> None:
    policy = tmp_path / "policies"
    shutil.copytree(bundled_policy_dir(), policy, ignore=shutil.ignore_patterns("__*", "data", "scenarios"))
    data = _write(tmp_path, _lines(example))
    jsonl = Decider(RegopyBackend(policy, [data]))
    yaml_ = Decider(RegopyBackend(bundled_policy_dir(), [bundled_data_dir()]))
    try:
        for target in [*example["identities"], *example["workloads"], "ghost"]:
            doc = make_proposal("rotate_api_key", target)
            a, b = jsonl.decide(doc).to_dict(), yaml_.decide(doc).to_dict()
            # Same facts, different files: only the revision differs.
            assert a.pop("policy_revision") != b.pop("policy_revision")
            assert a == b, target
    finally:
        jsonl.close()
        yaml_.close()


def _refused(tmp_path: Path, example: dict[str, Any], bad: str, *, at: int = 2, limits: Limits | None = None) -> str:
    lines = _lines(example)
    lines.insert(at - 1, bad)
    with pytest.raises(ValidationError) as info:
        load_inventory([_write(tmp_path, lines)], **({"limits": limits} if limits else {}))
    return "\n".join(info.value.problems)


@pytest.mark.parametrize(
    ("bad", "want"),
    [
        ("{not json", r"cmdb\.jsonl:2: malformed JSON"),
        ("[1, 2]", r"cmdb\.jsonl:2: each line must be a JSON object"),
        ('{"section": "secrets", "id": "x", "record": {}}', r"cmdb\.jsonl:2: section: must be one of"),
        ('{"section": "teams", "id": 7, "record": {}}', r"cmdb\.jsonl:2: id: must be a string"),
        ('{"section": "teams", "id": "t", "record": {}, "extra": 1}', r"cmdb\.jsonl:2: unexpected field"),
        ('{"section": "teams", "id": "t", "record": []}', r"cmdb\.jsonl:2: record: must be a JSON object"),
        ('{"section": "protected", "id": "x", "record": {}}', r"cmdb\.jsonl:2: a protected line has no record"),
        ('{"section": "teams", "id": "t", "id": "u", "record": {}}', r"cmdb\.jsonl:2: duplicate key 'id'"),
        ('{"section": "teams", "id": "t\\u0000", "record": {}}', r"cmdb\.jsonl:2.*NUL"),
        ('{"section": "teams", "id": "t", "record": {"name": "\\ud800"}}', r"cmdb\.jsonl:2.*surrogate"),
        ('{"section": "teams", "id": "t", "record": {"name": 1e999}}', r"cmdb\.jsonl:2.*not a finite number"),
        ('{"section": "teams", "id": "t", "record": {"name": NaN}}', r"cmdb\.jsonl:2.*NaN is not a JSON value"),
        ('{"section": "teams", "id": "t", "record": {"x": ' + "[" * 80 + "]" * 80 + "}}",
         r"cmdb\.jsonl:2.*nested deeper than 64"),
    ],
)
def test_bad_line_is_refused_with_file_and_line(
    tmp_path: Path, example: dict[str, Any], bad: str, want: str
) -> None:
    assert re.search(want, _refused(tmp_path, example, bad)), want


def test_schema_problem_names_the_records_line(tmp_path: Path, example: dict[str, Any]) -> None:
    key = next(iter(example["identities"]))
    rec = {**example["identities"][key], "privilege": "root"}
    lines = [ln for ln in _lines(example) if json.loads(ln).get("id") != key]
    lines.insert(4, json.dumps({"section": "identities", "id": key, "record": rec}))
    with pytest.raises(ValidationError, match=rf"cmdb\.jsonl:5: identities\.{key}\.privilege: 'root' is not one of"):
        load_inventory([_write(tmp_path, lines)])


def test_id_defined_twice_names_both_lines(tmp_path: Path, example: dict[str, Any]) -> None:
    lines = _lines(example)
    lines.append(lines[0])
    want = rf"cmdb\.jsonl:{len(lines)}: teams\.'.+': defined twice \(first on line 1\)"
    with pytest.raises(ValidationError, match=want):
        load_inventory([_write(tmp_path, lines)])


def test_dangling_reference_names_the_line(tmp_path: Path, example: dict[str, Any]) -> None:
    key, rec = next((k, r) for k, r in example["identities"].items() if r["used_by"])
    lines = [ln for ln in _lines(example) if json.loads(ln).get("id") != key]
    lines.insert(9, json.dumps({"section": "identities", "id": key, "record": {**rec, "used_by": ["nowhere"]}}))
    with pytest.raises(ValidationError, match=rf"cmdb\.jsonl:10: identities\.{key}\.used_by\[0\]: unknown workload"):
        load_inventory([_write(tmp_path, lines)])


def test_not_utf8_is_refused_with_its_line(tmp_path: Path, example: dict[str, Any]) -> None:
    raw = ("\n".join(_lines(example)[:3]) + "\n").encode() + b'{"section": "teams", "id": "t\xff", "record": {}}\n'
    with pytest.raises(ValidationError, match=r"line 4") as info:
        load_inventory([_write(tmp_path, raw)])
    assert info.value.code == "bad_encoding"


def test_file_over_the_size_limit_is_refused(tmp_path: Path, example: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=r"inventory_file_bytes") as info:
        load_inventory([_write(tmp_path, _lines(example))], limits=Limits(inventory_file_bytes=1000))
    assert info.value.code == "input_too_large"


def test_broken_jsonl_fails_closed_as_policy_broken(tmp_path: Path, example: dict[str, Any]) -> None:
    policy = tmp_path / "policies"
    shutil.copytree(bundled_policy_dir(), policy, ignore=shutil.ignore_patterns("__*", "data", "scenarios"))
    lines = _lines(example)
    lines.insert(1, "{not json")
    decider = Decider(RegopyBackend(policy, [_write(tmp_path, lines)]))
    try:
        decision = decider.decide(make_proposal("notify_owner", "svc-payments-key"))
    finally:
        decider.close()
    assert decision.tier == "deny" and decision.fail_closed is not None
    assert decision.fail_closed["code"] == "policy_broken"
    assert "cmdb.jsonl:2: malformed JSON" in decision.reasons[0]

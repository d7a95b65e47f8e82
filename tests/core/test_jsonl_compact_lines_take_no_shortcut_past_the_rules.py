"""Threat: a compact JSON Lines export slips a hostile line past the strict parser through the fast path.

A line written compactly (no spaces, no escapes, as CMDB exports and
``json.dumps(separators=(",", ":"))`` write them) is parsed by orjson and
accepted only when orjson writes it back byte for byte; everything else
takes the strict parser. orjson alone would keep the last of two duplicate
keys and read 20-digit integers as floats: each such line must still be
refused (or read) exactly as the strict parser does, naming file and line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine._resources import bundled_data_dir
from hitlgate.engine.decide.inventory import load_inventory
from hitlgate.errors import ValidationError


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _lines(doc: dict[str, Any]) -> list[str]:
    out = []
    for section in ("teams", "workloads", "partners", "identities", "approvers"):
        for key, rec in doc[section].items():
            out.append(_compact({"section": section, "id": key, "record": rec}))
    out.extend(_compact({"section": "protected", "id": key}) for key in doc["protected"])
    return out


@pytest.fixture
def example() -> dict[str, Any]:
    return dict(load_inventory([bundled_data_dir()]).document)


def _load(tmp_path: Path, lines: list[str]) -> Any:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "cmdb.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_inventory([data])


def test_a_compact_export_loads_the_same_document_as_yaml(tmp_path: Path, example: dict[str, Any]) -> None:
    assert dict(_load(tmp_path, _lines(example)).document) == example


@pytest.mark.parametrize(
    ("bad", "want"),
    [
        ('{"section":"teams","id":"t","id":"u","record":{}}', r"cmdb\.jsonl:2: duplicate key 'id'"),
        ('{"section":"teams","id":"t","record":{"name":"a","name":"b"}}', r"cmdb\.jsonl:2: duplicate key 'name'"),
        ('{"section":"teams","section":"teams","id":"t","record":{}}', r"cmdb\.jsonl:2: duplicate key 'section'"),
        ('{"section":"teams","id":"t","record":{"name":1e999}}', r"cmdb\.jsonl:2.*not a finite number"),
        ('{"section":"teams","id":"t","record":{"name":NaN}}', r"cmdb\.jsonl:2.*NaN is not a JSON value"),
        ('{"section":"teams","id":"t\\u0000","record":{}}', r"cmdb\.jsonl:2.*NUL"),
        ('{"section":"teams","id":"t","record":{"name":"\\ud800"}}', r"cmdb\.jsonl:2.*surrogate"),
        ('{"section":"teams","id":"t","record":{"x":' + "[" * 80 + "]" * 80 + "}}",
         r"cmdb\.jsonl:2.*nested deeper than 64"),
        ('{"section":"teams","id":"t","record":{"name":"x"},"extra":1}', r"cmdb\.jsonl:2: unexpected field"),
        ('{"section":"teams","id":"t","record":{"name":99999999999999999999}}', r"teams\.t\.name"),
    ],
    ids=["dup-id", "dup-nested", "dup-section", "1e999", "nan", "nul", "surrogate", "deep", "extra-field",
         "big-int"],
)
def test_a_hostile_compact_line_is_refused_as_the_strict_parser_refuses_it(
    tmp_path: Path, example: dict[str, Any], bad: str, want: str
) -> None:
    lines = _lines(example)
    lines.insert(1, bad)
    with pytest.raises(ValidationError, match="inventory") as info:
        _load(tmp_path, lines)
    problems = "\n".join(info.value.problems)
    assert re.search(want, problems), problems


def test_a_duplicate_key_that_orjson_would_merge_is_not_a_silent_override(
    tmp_path: Path, example: dict[str, Any]
) -> None:
    # The later "environment" would win in orjson: a production credential
    # read as a development one. The strict rules refuse the line instead.
    key, rec = next(iter(example["identities"].items()))
    body = _compact(rec)[1:-1]
    line = '{"section":"identities","id":"x-' + key + '","record":{' + body + ',"environment":"development"}}'
    lines = _lines(example)
    lines.append(line)
    with pytest.raises(ValidationError, match="inventory") as info:
        _load(tmp_path, lines)
    assert any("duplicate key 'environment'" in p for p in info.value.problems), info.value.problems

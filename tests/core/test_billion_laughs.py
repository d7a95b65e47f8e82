"""YAML anchors and aliases ("billion laughs") and other YAML features no hitlgate document needs: refused fast.

Regression for issue 7 item 3: a billion-laughs inventory hung ``decide``
(jsonschema built the repr of a 387-million-item list).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hitlgate.engine import load_inventory
from hitlgate.engine.config import Config
from hitlgate.engine.decide.scenarios import load_scenarios
from hitlgate.errors import ConfigError, ValidationError
from tests.conftest import make_proposal
from tests.core._hostile import decision_of, project, run


def billion_laughs(levels: int = 9) -> str:
    lines = ['teams: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"workloads{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    lines.append(f"partners: {{x: *a{levels - 1}}}")
    return "\n".join(lines) + "\n"


def _inventory(tmp_path: Path, body: str) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "inventory.yaml").write_text(body)
    return data


def test_billion_laughs_inventory_is_refused_quickly(tmp_path: Path) -> None:
    data = _inventory(tmp_path, billion_laughs())
    started = time.monotonic()
    refused = r"inventory\.yaml: line 1, column 8: YAML anchors \(&a0\) are not allowed"
    with pytest.raises(ValidationError, match=refused) as info:
        load_inventory([data])
    assert info.value.code == "yaml_alias"
    assert time.monotonic() - started < 1


def test_billion_laughs_inventory_makes_decide_fail_closed_not_hang(tmp_path: Path, pack_copy: Path) -> None:
    config = project(tmp_path, pack_copy, inventory=billion_laughs())
    started = time.monotonic()
    result = run(["decide", "--json", "-"], config=config, stdin=json.dumps(make_proposal()))
    assert time.monotonic() - started < 10
    decision = decision_of(result)
    assert decision["tier"] == "deny"
    assert "YAML anchors (&a0) are not allowed" in " ".join(decision["reasons"])  # type: ignore[arg-type]


def test_billion_laughs_alias_without_anchor_event_is_refused(tmp_path: Path) -> None:
    # An alias names an anchor; a document holding only an alias is refused for the alias itself.
    with pytest.raises(ValidationError, match=r"line 1, column 8: YAML aliases \(\*nowhere\) are not allowed"):
        load_inventory([_inventory(tmp_path, "teams: *nowhere\n")])


def test_billion_laughs_scenario_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("base: &p {justification: x}\ncases:\n  - note: n\n    proposal: *p\n")
    refused = r"s\.yaml: line 1, column 7: YAML anchors \(&p\) are not allowed"
    with pytest.raises(ValidationError, match=refused) as info:
        load_scenarios([tmp_path])
    assert info.value.code == "yaml_alias"


def test_billion_laughs_config_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "hitlgate.yaml"
    f.write_text("issuer: &i hitlgate\naudience: *i\n")
    with pytest.raises(ConfigError, match=r"YAML anchors \(&i\) are not allowed") as info:
        Config.from_file(f)
    assert info.value.code == "yaml_alias"


@pytest.mark.parametrize(
    ("body", "problem", "code"),
    [
        ("teams: {a: {name: x}}\n<<: {b: 1}\n", r"merge keys \(<<\) are not supported", "unsupported_yaml"),
        ("teams: !!python/object:os.system {}\n", r"the tag 'tag:yaml\.org,2002:python/object:os\.system'",
         "unsupported_yaml"),
        ("teams: !!set {a, b}\n", r"the tag 'tag:yaml.org,2002:set' is not supported", "unsupported_yaml"),
        ("teams: {}\n---\nteams: {}\n", r"more than one YAML document in one file", "unsupported_yaml"),
        ("teams:\n  t1: {name: a}\n  t1: {name: b}\n", r"line 3, column 3: duplicate key 't1'", "duplicate_key"),
        ("teams: {[a]: 1}\n", r"a mapping key must be a plain value", "invalid_inventory"),
        ("teams: {a: 1e999999}\nx: 9" + "9" * 5000 + "\n", r"cannot read '9+\.\.\.9+' as int", "invalid_inventory"),
    ],
    ids=["merge-key", "python-tag", "set-tag", "two-documents", "duplicate-id", "collection-key", "huge-int"],
)
def test_yaml_features_no_document_needs_are_refused(tmp_path: Path, body: str, problem: str, code: str) -> None:
    with pytest.raises(ValidationError, match=problem) as info:
        load_inventory([_inventory(tmp_path, body)])
    assert info.value.code == code

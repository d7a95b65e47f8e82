"""Bad input gets one clear error per problem, naming the JSON path; nothing is decided."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine import Proposal, load_inventory
from hitlgate.errors import ValidationError
from tests.conftest import make_proposal


def problems_of(doc: object) -> tuple[str, ...]:
    with pytest.raises(ValidationError, match=r"^invalid proposal: \d+ problem") as exc:
        Proposal.from_dict(doc)
    return exc.value.problems


def test_unknown_top_level_field_is_named() -> None:
    found = problems_of(make_proposal(tier="auto_allow"))
    assert any("(document)" in p and "'tier'" in p for p in found), found


def test_unknown_field_inside_action_is_named() -> None:
    doc = make_proposal()
    doc["action"]["customer_facing"] = False
    found = problems_of(doc)
    assert found == ("action: Additional properties are not allowed ('customer_facing' was unexpected)",)


def test_wrong_enum_names_path_and_value() -> None:
    found = problems_of(make_proposal(action_type="delete_everything"))
    assert len(found) == 1
    assert found[0].startswith("action.type: 'delete_everything' is not one of [")


def test_missing_target() -> None:
    doc = make_proposal()
    del doc["action"]["target"]
    assert problems_of(doc) == ("action.target: required field is missing",)


def test_non_object_parameters() -> None:
    doc = make_proposal()
    doc["action"]["parameters"] = ["rotate", "now"]
    assert problems_of(doc) == ("action.parameters: ['rotate', 'now'] is not of type 'object'",)


@pytest.mark.parametrize("where", ["target", "requester", "incident"])
@pytest.mark.parametrize("end", ["\n", "\r\n", "\u2028"])
def test_an_id_with_a_line_break_at_its_end_is_named_like_any_bad_id(where: str, end: str) -> None:
    # JSON Schema's "$" is the end of the text; Python's also matches before a final newline. Every
    # validator refuses these; the one that words the message must refuse them too, or the user got
    # a compiled validator's "data.action.target must match pattern ..." instead.
    doc = make_proposal()
    path = {"target": "action.target", "requester": "requester.id", "incident": "incident"}[where]
    if where == "target":
        doc["action"]["target"] += end
    elif where == "requester":
        doc["requester"]["id"] += end
    else:
        doc["incident"] = "INC-1" + end
    found = problems_of(doc)
    assert len(found) == 1
    assert found[0].startswith(f"{path}: "), found
    assert "does not match" in found[0]


def test_every_problem_reported_at_once() -> None:
    doc = make_proposal(action_type="nope", confidence=3)
    doc["requester"]["kind"] = "robot"
    found = problems_of(doc)
    assert len(found) == 3
    assert {p.split(":")[0] for p in found} == {"action.type", "confidence", "requester.kind"}


def test_not_an_object() -> None:
    assert problems_of(["not", "a", "proposal"]) == ("(document): expected a JSON object, got list",)


def test_requester_kind_enum() -> None:
    doc = make_proposal()
    doc["requester"]["kind"] = "superuser"
    assert problems_of(doc)[0].startswith("requester.kind: 'superuser' is not one of")


def test_cli_bad_proposal_exits_2_and_names_field(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps(make_proposal(action_type="delete_everything")))
    result = CliRunner().invoke(cli, ["decide", str(f)])
    assert result.exit_code == 2
    assert "action.type: 'delete_everything' is not one of" in result.output


def test_cli_malformed_json_exits_2(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text('{"action": ')
    result = CliRunner().invoke(cli, ["decide", str(f)])
    assert result.exit_code == 2
    assert "malformed JSON at line 1" in result.output


def test_malformed_inventory_yaml(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text("identities:\n  a: [unclosed\n")
    with pytest.raises(ValidationError, match=r"^invalid inventory( \S+)?: \d+ problem") as exc:
        load_inventory([tmp_path])
    assert "malformed YAML at line" in exc.value.problems[0]


def test_inventory_wrong_enum_and_unknown_field(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(
        "teams: {t: {}}\n"
        "identities:\n"
        "  k: {kind: api_key, environment: prod, owner: t, privilege: low, used_by: [], prod: true}\n"
    )
    with pytest.raises(ValidationError, match=r"^invalid inventory( \S+)?: \d+ problem") as exc:
        load_inventory([tmp_path])
    found = exc.value.problems
    assert any("identities.k.environment: 'prod' is not one of" in p for p in found), found
    assert any("identities.k: Additional properties are not allowed ('prod'" in p for p in found), found


def test_inventory_dangling_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # problems name the file relative to the working directory, with its line
    (tmp_path / "inv.yaml").write_text(
        "teams: {t: {}}\n"
        "identities:\n"
        "  k: {kind: api_key, environment: production, owner: nobody, privilege: low, used_by: [ghost], partner: p}\n"
    )
    with pytest.raises(ValidationError, match=r"^invalid inventory( \S+)?: \d+ problem") as exc:
        load_inventory([tmp_path])
    assert set(exc.value.problems) == {
        "inv.yaml:3: identities.k.owner: unknown team 'nobody'",
        "inv.yaml:3: identities.k.used_by[0]: unknown workload 'ghost'",
        "inv.yaml:3: identities.k.partner: unknown partner 'p'",
    }


def test_inventory_id_defined_twice_across_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text("teams: {t: {}}\n")
    (tmp_path / "b.yaml").write_text("teams: {t: {}}\n")
    with pytest.raises(ValidationError, match=r"^invalid inventory( \S+)?: \d+ problem") as exc:
        load_inventory([tmp_path])
    assert exc.value.problems == ("teams.t: defined in both a.yaml and b.yaml",)


def test_inventory_bad_public_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text(
        "teams: {t: {}}\napprovers:\n  x: {roles: [], teams: [t], public_key: 'rsa:abc'}\n"
    )
    with pytest.raises(ValidationError, match=r"^invalid inventory( \S+)?: \d+ problem") as exc:
        load_inventory([tmp_path])
    assert exc.value.problems[0].startswith("a.yaml:3: approvers.x.public_key: 'rsa:abc' does not match")

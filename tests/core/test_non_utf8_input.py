"""Encodings: a byte that is not UTF-8, a BOM, NUL, a lone surrogate: refused naming the file and offset.

Regression for issue 7 item 4: a non-UTF-8 byte in a proposal or an
inventory file raised UnicodeDecodeError with a traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hitlgate.engine import Proposal, load_inventory
from hitlgate.engine.approve.approvals import SignedStatement
from hitlgate.engine.config import Config
from hitlgate.engine.decide.scenarios import load_scenarios
from hitlgate.errors import ConfigError, ValidationError
from tests.conftest import make_proposal
from tests.core._hostile import decision_of, project, run

PROPOSAL = json.dumps(make_proposal()).encode()


def _bad_byte(doc: bytes, at: int = 40) -> bytes:
    return doc[:at] + b"\xff" + doc[at:]


def test_non_utf8_proposal_file_names_file_and_offset(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_bytes(_bad_byte(PROPOSAL))
    result = run(["decide", "--json", str(f)])
    assert result.exit_code == 2
    assert f"{f}: not UTF-8: byte 0xff at byte offset 40 (line 1, column 41)" in result.output


def test_non_utf8_proposal_on_stdin(tmp_path: Path) -> None:
    config = project(tmp_path, Path(__file__).parents[2] / "policies")
    result = run(["propose", "-"], config=config, stdin=_bad_byte(PROPOSAL, 10))
    assert result.exit_code == 2
    assert "stdin: not UTF-8: byte 0xff at byte offset 10" in result.output


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xef\xbb\xbf" + PROPOSAL, r"starts with a UTF-8 byte order mark \(BOM\)"),
        (PROPOSAL[:20] + b"\x00" + PROPOSAL[20:], r"NUL byte at byte offset 20 \(line 1, column 21\)"),
        (json.dumps(make_proposal()).encode("utf-16"), r"not UTF-8: byte 0xff at byte offset 0"),
        (json.dumps(make_proposal()).encode("utf-16-le"), r"NUL byte at byte offset 1 .*is it UTF-16"),
        (PROPOSAL[:30] + b"\xed\xa0\x80" + PROPOSAL[30:], r"byte 0xed at byte offset 30"),  # an encoded surrogate
    ],
    ids=["bom", "nul", "utf16-bom", "utf16-le", "encoded-surrogate"],
)
def test_non_utf8_proposal_variants_are_refused(tmp_path: Path, body: bytes, problem: str) -> None:
    f = tmp_path / "p.json"
    f.write_bytes(body)
    result = run(["decide", "--json", str(f)])
    assert result.exit_code == 2
    assert f"{f}: " in result.output
    assert re.search(problem, result.output), result.output


@pytest.mark.parametrize(
    ("escape", "problem"),
    [
        ("\\ud800", r"justification: string holds a lone UTF-16 surrogate \(\\ud800\); refused"),
        ("\\udfff tail", r"justification: string holds a lone UTF-16 surrogate \(\\udfff\); refused"),
        ("a\\u0000b", r"justification: string holds a NUL character; refused"),
    ],
    ids=["high-surrogate", "low-surrogate", "escaped-nul"],
)
def test_non_utf8_escapes_in_json_strings_are_refused(escape: str, problem: str) -> None:
    text = json.dumps(make_proposal(justification="JUST")).replace("JUST", escape)
    with pytest.raises(ValidationError, match=problem) as info:
        Proposal.from_json(text)
    assert info.value.code == "bad_encoding"


def test_non_utf8_surrogate_in_a_key_is_refused() -> None:
    text = json.dumps(make_proposal()).replace('"parameters": {}', '"parameters": {"\\ud800": 1}')
    with pytest.raises(ValidationError, match=r"action\.parameters: a key holds a lone UTF-16 surrogate"):
        Proposal.from_json(text)


def test_surrogate_pairs_and_other_scripts_are_fine(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps(make_proposal(justification="\\ud83d\\ude00 rotation: clé compromise, 鍵の漏洩")))
    f.write_text(f.read_text().replace("\\\\ud83d\\\\ude00", "\\ud83d\\ude00"))
    result = run(["decide", "--json", str(f)])
    assert result.exit_code == 4, result.output  # dual approval needed
    assert decision_of(result)["tier"] == "dual_approval"


def test_non_utf8_inventory_names_file_and_offset(tmp_path: Path, pack_copy: Path) -> None:
    text = (pack_copy / "data" / "inventory.yaml").read_bytes()
    at = text.index(b"Payments")
    data = tmp_path / "data"
    data.mkdir()
    (data / "inventory.yaml").write_bytes(_bad_byte(text, at))
    with pytest.raises(ValidationError, match=rf"inventory\.yaml: not UTF-8: byte 0xff at byte offset {at} \(line \d+"):
        load_inventory([data])
    config = project(tmp_path, pack_copy, inventory=_bad_byte(text, at))
    result = run(["decide", "--json", "-"], config=config, stdin=PROPOSAL)
    decision = decision_of(result)
    assert decision["tier"] == "deny"
    assert f"not UTF-8: byte 0xff at byte offset {at}" in " ".join(decision["reasons"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xef\xbb\xbfteams: {}\n", r"byte order mark"),
        (b"teams: {a: {name: x\x00}}\n", r"NUL byte at byte offset 19"),
        (b'teams: {a: {name: "x\\0"}}\n', r"line 1, column 19: string holds a NUL character"),
        # libyaml refuses the escape itself; the pure-Python parser reads it and the loader refuses the string.
        (b'teams: {a: {name: "\\ud800"}}\n',
         r"found invalid Unicode character escape code|string holds a lone UTF-16 surrogate"),
    ],
    ids=["bom", "nul-byte", "nul-escape", "surrogate-escape"],
)
def test_non_utf8_inventory_variants_are_refused(tmp_path: Path, body: bytes, problem: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "inventory.yaml").write_bytes(body)
    with pytest.raises(ValidationError, match=problem) as info:
        load_inventory([data])
    assert info.value.code in ("bad_encoding", "invalid_inventory")


def test_non_utf8_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_bytes(b"cases:\n  - note: caf\xe9\n")
    with pytest.raises(ValidationError, match=r"s\.yaml: not UTF-8: byte 0xe9 at byte offset 20 \(line 2, column 14\)"):
        load_scenarios([tmp_path])


def test_non_utf8_config_file(tmp_path: Path) -> None:
    f = tmp_path / "hitlgate.yaml"
    f.write_bytes(b"issuer: hitl\xc3gate\n")
    with pytest.raises(ConfigError, match=r"not UTF-8: byte 0xc3 at byte offset 12") as info:
        Config.from_file(f)
    assert info.value.code == "bad_encoding"


def test_non_utf8_signed_approval_and_warrant(tmp_path: Path) -> None:
    config = project(tmp_path, Path(__file__).parents[2] / "policies")
    signed = tmp_path / "signed.json"
    signed.write_bytes(b'{"statement": {}, "signature": "\xff"}')
    result = run(["approve", "--signed", str(signed)], config=config)
    assert result.exit_code == 2
    assert "signed.json: not UTF-8: byte 0xff at byte offset 32" in result.output
    action = tmp_path / "action.json"
    action.write_text(json.dumps(make_proposal()["action"]))
    token = tmp_path / "warrant.jws"
    token.write_bytes(b"eyJ.\xffabc.def")
    result = run(["verify", str(action), "--warrant", str(token)], config=config)
    assert result.exit_code == 2
    assert "warrant.jws: byte 0xff at byte offset 4 is not ASCII" in result.output


def test_non_utf8_audit_export_line(tmp_path: Path, pack_copy: Path) -> None:
    export = tmp_path / "export.jsonl"
    export.write_bytes(b'\n{"record": "ev\xffent"}\n')
    result = run(["audit", "verify", "--file", str(export)], config=project(tmp_path, pack_copy))
    assert result.exit_code == 3
    assert "export.jsonl line 2: not UTF-8: byte 0xff at byte offset 15 (column 15)" in result.output


def test_non_utf8_signed_statement_from_an_sdk_caller() -> None:
    with pytest.raises(ValidationError, match=r"not UTF-8: byte 0xff at byte offset 14") as info:
        SignedStatement.from_json(b'{"statement": \xff}')
    assert info.value.code == "bad_encoding"

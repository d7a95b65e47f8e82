"""Attack: numbers too large for a 64-bit float (``1e999``) in a proposal, a signed approval or YAML.

Python's JSON parser turns ``1e999`` into ``inf``. Before, a proposal with
``"parameters": {"x": 1e999}`` was refused only when it was canonicalised,
with the path ``(document)`` ("inf is not representable in JCS"), and
``"confidence": 1e999`` became ``inf``. Now every non-finite float is refused
when the document is read, as ``invalid_<what>`` naming the field's path
(YAML: the line and column).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine._safeparse import load_yaml, parse_json
from hitlgate.engine.config import Config
from hitlgate.engine.decide.proposal import Proposal
from hitlgate.errors import ConfigError, ValidationError
from tests.conftest import make_proposal


def _with_literal(doc: dict, placeholder: float, literal: str) -> str:
    """The JSON text of ``doc`` with the float ``placeholder`` swapped for a number literal JSON allows."""
    return json.dumps(doc).replace(repr(placeholder), literal)


@pytest.mark.parametrize(
    ("where", "literal"),
    [("action.parameters.x", "1e999"), ("action.parameters.x", "-1e999"), ("confidence", "1e999"),
     ("action.parameters.list[1]", "1E400")],
)
def test_overflowing_number_in_a_proposal_is_refused_naming_its_path(where: str, literal: str) -> None:
    doc = make_proposal()
    if where == "confidence":
        doc["confidence"] = 0.123456
    elif where.endswith("[1]"):
        doc["action"]["parameters"]["list"] = [1, 0.123456]
    else:
        doc["action"]["parameters"]["x"] = 0.123456
    text = _with_literal(doc, 0.123456, literal)
    assert literal in text
    with pytest.raises(ValidationError, match=re.escape(f"{where}: ") + r"-?inf is not a finite number") as exc:
        Proposal.from_json(text)
    assert exc.value.code == "invalid_proposal"


def test_infinite_float_in_a_callers_dict_is_refused_naming_its_path() -> None:
    doc = make_proposal(confidence=float("inf"))
    with pytest.raises(ValidationError, match=r"confidence: inf is not a finite number") as exc:
        Proposal.from_dict(doc)
    assert exc.value.code == "invalid_proposal"


def test_overflowing_number_in_a_signed_approval_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"statement.n: inf is not a finite number"):
        parse_json('{"statement": {"n": 1e999}}', what="signed approval", label="(document)", max_depth=16)


def test_yaml_infinity_is_refused_with_line_and_column() -> None:
    with pytest.raises(ValidationError, match=r"line 2, column 4: '\.inf' is not a finite number"):
        load_yaml("a: 1\nb: .inf\n", what="inventory", label="inv.yaml", max_depth=16)


def test_cli_decide_refuses_1e999_as_invalid_proposal_exit_2(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    doc = make_proposal()
    doc["action"]["parameters"]["x"] = 0.123456
    f = tmp_path / "huge.json"
    f.write_text(_with_literal(doc, 0.123456, "1e999"))
    result = CliRunner().invoke(cli, ["--config", str(proj / "hitlgate.yaml"), "--json", "decide", str(f)])
    error = json.loads(result.stdout)["error"]
    assert (result.exit_code, error["code"]) == (2, "invalid_proposal")
    assert error["problems"][0].startswith("action.parameters.x: inf is not a finite number")


def test_oversized_config_says_its_limit_is_fixed(tmp_path: Path) -> None:
    config = tmp_path / "hitlgate.yaml"
    config.write_text("policy: p\n" + "#" * (2 * 1024 * 1024))
    with pytest.raises(ConfigError, match=r"this limit is fixed and cannot be configured") as exc:
        Config.from_file(config)
    assert "limits." not in str(exc.value)

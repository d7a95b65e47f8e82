"""Threat: a string the policy copies from the proposal spells extra keys in the embedded engine's output.

rego-cpp writes strings into its JSON result without escaping them. A
custom rule that puts the proposal's justification into a reason would let
an agent write ``", "quorum": {...}`` and, with an ordinary parser, replace
the decision's quorum. The embedded backend refuses a result that names a
key twice, so the decision fails closed instead; an honest result parses as
before.
"""

from __future__ import annotations

import pytest
import regopy

from hitlgate.engine.decide._regopy import evaluate_input
from hitlgate.errors import BackendUnavailable

MODULE = """package hitlgate
import rego.v1
decision := {"quorum": {"required": 2}, "reasons": [input.justification]}
"""


def _evaluate(justification: str) -> object:
    interpreter = regopy.Interpreter()
    interpreter.add_module("decision.rego", MODULE)
    bundle = interpreter.build(None, ["hitlgate/decision"])
    return evaluate_input(interpreter, bundle, {"justification": justification})


def test_an_honest_result_parses() -> None:
    assert _evaluate("rotate after INC-1") == {"quorum": {"required": 2}, "reasons": ["rotate after INC-1"]}


def test_a_string_that_spells_a_duplicate_key_is_refused() -> None:
    # Keys come out sorted: "quorum" is written before "reasons", so a
    # "quorum" spelled inside the reason is the later duplicate, which an
    # ordinary parser keeps: two approvals would become none.
    attack = 'x"], "quorum": {"required": 0}, "zz": ["y'
    with pytest.raises(BackendUnavailable, match=r"the result names 'quorum' twice"):
        _evaluate(attack)


def test_a_stray_quote_or_control_character_fails_closed() -> None:
    for text in ('say "hi"', "line\nbreak"):
        with pytest.raises(BackendUnavailable, match="regopy returned an unreadable result"):
            _evaluate(text)

"""Fault: the embedded engine hands the policy a different input than the caller built.

The embedded backend builds rego-cpp's input itself, one C call per node
(``hitlgate.engine.decide._regopy.evaluate_input``), rather than through regopy's
``Input``. These tests hold that path to the document it was given: every
JSON type, non-ASCII and empty strings, empty containers and the int64
bounds. An integer beyond 64 bits fails closed: regopy's ``Input`` silently
wrapped it (2**70 reached the policy as 0, 2**63 as -2**63) and rego-cpp's
JSON parser makes it an inexact float, while OPA keeps it exact.

(Not covered: a string holding a quote, a backslash or a control character
comes back from rego-cpp unescaped, so an output that echoes one is not
JSON and the decision fails closed; ids cannot hold them, see the schema.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine.decide._regopy import _Compiled
from hitlgate.engine.decide.policy import PolicyModules
from hitlgate.errors import BackendUnavailable

ECHO = """package hitlgate

decision := {"echo": input, "next": input.n + 1}
"""


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> _Compiled:
    policy_dir: Path = tmp_path_factory.mktemp("echo-pack")
    (policy_dir / "echo.rego").write_text(ECHO)
    return _Compiled(PolicyModules.load(policy_dir))


DOCUMENT: dict[str, Any] = {
    "n": 41,
    "strings": ["", "plain", "ünïcödé ✓", "emoji 🎉", "sep:a/b@c.d-e_f"],
    "numbers": [0, -1, 2**63 - 1, -(2**63), 1.5, -0.25, 1e300],
    "flags": [True, False, None],
    "empty": {"object": {}, "array": []},
    "nested": {"a": {"b": {"c": [[1, [2, {"d": "e"}]]]}}},
}


def test_every_json_type_reaches_the_policy_unchanged(echo: _Compiled) -> None:
    out = echo.query(DOCUMENT)
    assert out["echo"] == DOCUMENT
    assert out["next"] == 42


def test_a_tuple_reaches_the_policy_as_an_array(echo: _Compiled) -> None:
    out = echo.query({"n": 1, "t": ("a", 1)})
    assert out["echo"]["t"] == ["a", 1]


@pytest.mark.parametrize("n", [2**63, 2**70, -(2**63) - 1, 10**30])
def test_integer_beyond_64_bits_fails_closed_instead_of_wrapping(echo: _Compiled, n: int) -> None:
    with pytest.raises(BackendUnavailable, match=r"integer in the input is beyond 64 bits"):
        echo.query({"n": n, "other": "kept"})


def test_a_value_json_cannot_hold_is_refused_not_guessed(echo: _Compiled) -> None:
    with pytest.raises(BackendUnavailable, match=r"cannot pass a value of type bytes to the policy"):
        echo.query({"n": 1, "raw": b"bytes"})
    # The interpreter is still usable after the refused input.
    assert echo.query({"n": 2})["next"] == 3

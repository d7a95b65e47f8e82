"""A Rego file without a ``package`` line: refused with its place, every decision fails closed.

rego-cpp (regopy 1.5) compiles such a module and then crashes the whole
process (a segfault) on the first query: ``decide``, ``serve`` and every
command that opens the engine died without a word. The embedded backend now
refuses the module before regopy sees it; OPA refuses it itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hitlgate.engine import Config, Decider
from tests.conftest import make_proposal


@pytest.mark.parametrize("source, line", [("a = b\n", 1), ("# a comment\n\nallow := true\n", 3), ("  \n", 1)])
def test_module_without_package_fails_closed(pack_copy: Path, tmp_path: Path, source: str, line: int) -> None:
    (pack_copy / "leak.rego").write_text(source)
    config = Config(policy_dir=pack_copy, data_paths=(pack_copy / "data",), state_url=f"sqlite:///{tmp_path / 's.db'}")
    decider = Decider.from_config(config)
    try:
        decision = decider.decide(make_proposal())
    finally:
        decider.close()
    assert decision.tier == "deny"
    assert decision.fail_closed is not None and decision.fail_closed["code"] == "policy_broken"
    assert decision.fail_closed["reason"].endswith(
        f"policy does not compile (regopy): {pack_copy / 'leak.rego'}:{line}:1: a Rego module must begin with a "
        "package declaration"), decision.fail_closed["reason"]


def test_module_with_comments_before_its_package_is_fine(pack_copy: Path, tmp_path: Path) -> None:
    (pack_copy / "extra.rego").write_text("# METADATA\n# title: extra\n\npackage hitlgate.extra\n\nx := 1\n")
    config = Config(policy_dir=pack_copy, data_paths=(pack_copy / "data",), state_url=f"sqlite:///{tmp_path / 's.db'}")
    decider = Decider.from_config(config)
    try:
        assert decider.decide(make_proposal()).fail_closed is None
    finally:
        decider.close()

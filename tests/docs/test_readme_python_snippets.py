"""Every Python snippet in the README imports what it uses, and its imports exist.

A reader copies a snippet into a file: a name it uses but never binds
(``InvalidWarrant`` without ``from hitlgate.errors import InvalidWarrant``)
is a ``NameError`` on their first run. Each ``python`` block must parse,
every name it reads must be bound in the block (import, assignment,
definition, parameter, ``as``) or be a builtin, and every ``from X import Y``
must name a module and attribute that exist in this checkout.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    """The README's ``python`` blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def unbound_names(source: str) -> set[str]:
    """Names the snippet reads without binding them anywhere in it (scopes merged, builtins excepted)."""
    tree = ast.parse(source)
    bound: set[str] = set(dir(builtins))
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store | ast.Del) else read).add(node.id)
    return read - bound


def test_the_readme_has_python_snippets() -> None:
    assert python_blocks(), "no ```python block found: the tests below would check nothing"


def test_unbound_names_are_found() -> None:
    # The checker itself: the README's old guard snippet used InvalidWarrant, token and run unbound.
    assert unbound_names("guard.execute(token, action, run)\nexcept_ = InvalidWarrant") == {
        "guard", "token", "action", "run", "InvalidWarrant",
    }


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_python_snippet_binds_every_name_it_uses(index: int) -> None:
    source = python_blocks()[index]
    assert unbound_names(source) == set(), source


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_python_snippet_imports_exist(index: int) -> None:
    for node in ast.walk(ast.parse(python_blocks()[index])):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)

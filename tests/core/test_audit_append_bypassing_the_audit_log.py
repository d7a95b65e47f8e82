"""An audit event appended around the audit log skips the anchor checks and the checkpoints.

:meth:`hitlgate.engine.ledger.auditlog.AuditLog.append` refuses to build on a
chain the anchor shows truncated or rewritten and signs the checkpoints of
warrant issue and consumption. A second caller of the store's raw
``Transaction.append`` in the package would write events without either, so
the source is held to one caller. And the guard, the enforcement point, gets
its collaborators handed in: it imports nothing from the workflow it guards
(the two used to import each other, and the guard called the engine's
private ``_append``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import hitlgate

PACKAGE = Path(hitlgate.__file__).resolve().parent
AUDIT_LOG = PACKAGE / "engine" / "ledger" / "auditlog.py"
GUARD = PACKAGE / "engine" / "approve" / "guard.py"
#: The keywords of ``Transaction.append(kind, *, request_id, payload, at)``.
RAW_APPEND_KEYWORDS = {"request_id", "payload", "at"}


def _raw_appends(path: Path) -> list[int]:
    """Lines in ``path`` that call ``<something>.append(...)`` with the store's append keywords."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "append"
        and RAW_APPEND_KEYWORDS <= {k.arg for k in node.keywords}
    ]


def test_only_the_audit_log_appends_to_the_chain() -> None:
    callers = {p.relative_to(PACKAGE).as_posix(): lines for p in sorted(PACKAGE.rglob("*.py"))
               if (lines := _raw_appends(p))}
    assert list(callers) == [AUDIT_LOG.relative_to(PACKAGE).as_posix()]
    assert len(callers[AUDIT_LOG.relative_to(PACKAGE).as_posix()]) == 1


def test_the_guard_imports_nothing_from_the_workflow_nor_calls_its_private_methods() -> None:
    tree = ast.parse(GUARD.read_text(encoding="utf-8"), filename=str(GUARD))
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert [m for m in imported if "workflow" in m] == []
    # self.<collaborator>._<private>: another object's private member.
    private = [
        ast.unparse(node) for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        and isinstance(node.value, ast.Attribute) and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    ]
    assert private == []
    assert "hitlgate.engine.ledger.auditlog" in imported

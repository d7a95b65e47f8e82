"""Where a policy pack problem is: ``path/relative/to/cwd:line``, the same form in every report.

``decide`` (a fail-closed reason) and ``policy test`` name a broken Rego
module or inventory file alike, so a user can paste either into an editor.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def locate_inventory_problem(problem: str, files: Sequence[Path]) -> str:
    """Prefix an inventory problem (``[file.yaml: ]path: message``) with the file and line it points at.

    The form is the one ``opa check`` uses for Rego: ``policies/data/x.yaml:8: path: message``,
    the file relative to the working directory. A problem it cannot place is returned unchanged.
    """
    head, sep, rest = problem.partition(": ")
    named = [f for f in files if f.name == head] if sep else []
    candidates, text = (named, rest) if named else (list(files), problem)
    path, sep, message = text.partition(": ")
    if not sep:
        return problem
    # "Additional properties are not allowed ('tags' was unexpected)": point at the field itself.
    extra = re.search(r"\('([^']+)' was unexpected\)", message)
    for f in candidates:
        line = _yaml_line(f, path, extra.group(1) if extra else None)
        if line is not None:
            return f"{display_path(f)}:{line}: {path}: {message}"
    return f"{display_path(named[0])}: {text}" if named else problem


def _yaml_line(file: Path, path: str, field_name: str | None) -> int | None:
    """1-based line of the node at a problem's path (``identities.key.used_by[0]``) in a YAML file, or None."""
    try:
        node = yaml.compose(file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    rest = "" if path == "(document)" else path
    line: int | None = None if rest else 1
    if field_name is not None:
        rest = f"{rest}.{field_name}" if rest else field_name
    while rest and node is not None:
        if isinstance(node, yaml.MappingNode):
            # Ids may contain dots, so take the longest key the path starts with.
            best: tuple[str, yaml.Node, yaml.Node] | None = None
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if rest == key or rest.startswith((key + ".", key + "[")):
                    if best is None or len(key) > len(best[0]):
                        best = (key, key_node, value_node)
            if best is None:
                return None
            key, key_node, node = best
            line, rest = key_node.start_mark.line + 1, rest[len(key) :].removeprefix(".")
        elif isinstance(node, yaml.SequenceNode):
            m = re.match(r"\[(\d+)\]", rest)
            if m is None or int(m.group(1)) >= len(node.value):
                return None
            node = node.value[int(m.group(1))]
            line, rest = node.start_mark.line + 1, rest[m.end() :].removeprefix(".")
        else:
            return None
    return line

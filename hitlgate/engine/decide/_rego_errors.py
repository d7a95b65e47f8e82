"""Rego compile errors in words: ``file:line:col: message``, like ``opa check``.

Both engines report a broken module, each in its own way:

* regopy (rego-cpp) raises a ``RegoError`` whose text is an S-expression
  with length-prefixed strings and *byte offsets*::

      (rego-errorseq
        (error 13:decision.rego|5756|2
          (errormsg 16:this is unclosed)
          (errorast |5756|2)))

  :func:`from_regopy` maps each offset to a line and a character column of
  the module it names, words the message (``'{' is not closed``), and drops
  the echo that rego-cpp adds for an unclosed bracket, which also blames the
  module's ``package`` keyword.
* ``opa check --format json`` prints ``{"errors": [{message, code,
  location: {file, row, col}, details: {line, idx}}]}``, read by
  :func:`from_opa_check`.

Either way the result is a list of :class:`RegoProblem`, which print the
same for both engines, with the source line and a caret under the column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hitlgate.errors import PolicyError


@dataclass(frozen=True)
class RegoProblem:
    """One compile error at a place in a module."""

    file: str
    line: int
    col: int
    message: str
    #: OPA's error code (``rego_parse_error``, ``rego_type_error``, ...), or "" from regopy.
    code: str = ""
    #: The source line the error points into, when known.
    source_line: str | None = None

    def __str__(self) -> str:
        code = f"{self.code}: " if self.code else ""
        return f"{self.file}:{self.line}:{self.col}: {code}{self.message}"

    def render(self, indent: str = "    ") -> str:
        """The problem, then the source line with a caret under the column (as ``opa check`` does)."""
        if self.source_line is None or not self.source_line.strip():
            return str(self)
        line = self.source_line.rstrip("\n")
        # Keep tabs in the caret's prefix so the caret lines up however wide a tab is shown.
        prefix = "".join("\t" if c == "\t" else " " for c in line[: max(self.col - 1, 0)])
        return f"{self}\n{indent}{line}\n{indent}{prefix}^"

    def with_file(self, file: str) -> RegoProblem:
        """The same problem, naming the file as the user should see it."""
        return RegoProblem(file, self.line, self.col, self.message, self.code, self.source_line)


class RegoCompileError(PolicyError):
    """A policy pack that does not compile, with one :class:`RegoProblem` per error.

    The message is one line (it becomes the reason of a fail-closed
    decision); ``rego_problems`` keep the places for ``policy test``, which
    prints each with its source line.
    """

    def __init__(self, engine: str, rego_problems: list[RegoProblem], raw: str = "") -> None:
        self.rego_problems = tuple(rego_problems)
        if rego_problems:
            summary = "; ".join(str(p) for p in rego_problems[:3])
            more = f" (and {len(rego_problems) - 3} more)" if len(rego_problems) > 3 else ""
        else:
            lines = [ln.strip() for ln in raw.strip().splitlines() if ln.strip()]
            summary, more = " | ".join(lines[:8]) or "unknown error", ""
        super().__init__(
            f"policy does not compile ({engine}): {summary}{more}",
            problems=[str(p) for p in rego_problems] or [summary],
        )


# -- regopy --------------------------------------------------------------------


class _Scanner:
    """Reads rego-cpp's S-expression: atoms, parentheses, ``N:text`` strings, ``|offset|length``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def tokens(self) -> list[Any]:
        out: list[Any] = []
        stack: list[list[Any]] = [out]
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c.isspace():
                self.pos += 1
            elif c == "(":
                node: list[Any] = []
                stack[-1].append(node)
                stack.append(node)
                self.pos += 1
            elif c == ")":
                if len(stack) > 1:
                    stack.pop()
                self.pos += 1
            else:
                stack[-1].append(self._atom())
        return out

    def _atom(self) -> Any:
        text = self.text
        start = self.pos
        while self.pos < len(text) and text[self.pos].isdigit():
            self.pos += 1
        if self.pos > start and self.pos < len(text) and text[self.pos] == ":":
            # A length-prefixed string: exactly N characters follow the colon.
            n = int(text[start : self.pos])
            value = text[self.pos + 1 : self.pos + 1 + n]
            self.pos += 1 + n
            return ("str", value, self._location())
        self.pos = start
        if text[self.pos] == "|":
            return ("loc", None, self._location())
        while self.pos < len(text) and not text[self.pos].isspace() and text[self.pos] not in "()":
            self.pos += 1
        return ("atom", text[start : self.pos], None)

    def _location(self) -> tuple[int, int] | None:
        # ``|offset|length`` right after a string (or alone, in errorast).
        m = _LOCATION.match(self.text, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        return int(m.group(1)), int(m.group(2))


_LOCATION = re.compile(r"\|(\d+)\|(\d+)")


def _walk_errors(node: list[Any]) -> list[list[Any]]:
    found = []
    for child in node:
        if isinstance(child, list):
            if child and child[0] == ("atom", "error", None):
                found.append(child)
            else:
                found.extend(_walk_errors(child))
    return found


def _position(source: bytes, offset: int) -> tuple[int, int, str]:
    """1-based line and character column of a byte offset, and that line's text."""
    offset = max(0, min(offset, len(source)))
    line_start = source.rfind(b"\n", 0, offset) + 1
    line_end = source.find(b"\n", offset)
    line_end = len(source) if line_end < 0 else line_end
    line = source.count(b"\n", 0, offset) + 1
    col = len(source[line_start:offset].decode("utf-8", errors="replace")) + 1
    return line, col, source[line_start:line_end].decode("utf-8", errors="replace")


def from_regopy(text: str, modules: Mapping[str, str]) -> list[RegoProblem]:
    """Translate a regopy compile error into problems; empty if ``text`` is not rego-cpp's error format."""
    problems: list[RegoProblem] = []
    for err in _walk_errors(_Scanner(text).tokens()):
        file, where = None, None
        message = ""
        for part in err[1:]:
            if isinstance(part, tuple) and part[0] == "str" and file is None:
                file, where = part[1], part[2]
            elif isinstance(part, list) and part and part[0] == ("atom", "errormsg", None):
                message = " ".join(p[1] for p in part[1:] if isinstance(p, tuple) and p[1])
        if file is None or where is None:
            continue
        source = modules.get(file, "").encode("utf-8")
        offset, length = where
        message = _word(message, source[offset : offset + length].decode("utf-8", errors="replace").strip())
        if offset >= len(source.rstrip()):
            # rego-cpp points past the last token when the module ends too
            # early; point at the end of the last line instead.
            offset = len(source.rstrip())
            message += " at the end of the file"
        line, col, source_line = _position(source, offset)
        problems.append(RegoProblem(file, line, col, message, "", source_line))
    return _drop_echoes(problems)


def _word(message: str, token: str) -> str:
    if message == "this is unclosed" and token:
        return f"{token!r} is not closed"
    return message or "compile error"


def _drop_echoes(problems: list[RegoProblem]) -> list[RegoProblem]:
    # rego-cpp reports an unclosed bracket twice: at the bracket, and at the
    # `package` keyword of the module that contains it. The second blames a
    # line that is fine, so it goes whenever the module has another error.
    def echo(p: RegoProblem) -> bool:
        return p.message == "'package' is not closed"

    real_files = {p.file for p in problems if not echo(p)}
    kept: list[RegoProblem] = []
    seen: set[tuple[str, int, str]] = set()
    for p in problems:
        # rego-cpp also reports one bad operator once per token it touches
        # ("x := = 3" twice on the same line): one line, one message, one problem.
        if (echo(p) and p.file in real_files) or (p.file, p.line, p.message) in seen:
            continue
        seen.add((p.file, p.line, p.message))
        kept.append(p)
    return kept


# -- opa check -----------------------------------------------------------------


def from_opa_check(output: str) -> list[RegoProblem]:
    """Read ``opa check --format json`` output; empty if it holds no JSON error list."""
    start = output.find("{")
    if start < 0:
        return []
    try:
        doc, _ = json.JSONDecoder().raw_decode(output[start:])
    except ValueError:
        return []
    problems = []
    for err in doc.get("errors") or [] if isinstance(doc, dict) else []:
        if not isinstance(err, dict):
            continue
        loc = err.get("location") or {}
        details = err.get("details") or {}
        file = str(loc.get("file") or "")
        row = int(loc.get("row") or 0)
        col = int(loc.get("col") or 0)
        source_line = details.get("line") if isinstance(details.get("line"), str) else _read_line(file, row)
        if isinstance(details.get("idx"), int):
            col = details["idx"] + 1
        message, code = str(err.get("message") or "error"), str(err.get("code") or "")
        problems.append(RegoProblem(file, row, max(col, 1), message, code, source_line))
    return problems


def _read_line(file: str, row: int) -> str | None:
    try:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return lines[row - 1] if 0 < row <= len(lines) else None

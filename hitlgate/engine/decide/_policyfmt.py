"""``hitlgate policy fmt``: ``opa fmt`` on the pack's Rego (list, diff or write).

OPA formats; this module decides what to do with the result. ``opa fmt
--list`` names the files it would change; for ``--diff`` and ``--write``
each such file is formatted to stdout (``opa fmt -- FILE``), so the diff is a
plain unified diff (difflib, not OPA's coloured word diff) and the write goes
through the CLI's one file writer, which never follows a symbolic link.
File names always follow ``--``: a file called ``--diff.rego`` is a file.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hitlgate.engine._files import write_file
from hitlgate.engine.decide._locate import display_path
from hitlgate.engine.decide._policycheck import encoding_findings, require_opa
from hitlgate.engine.decide._policycheck import run_tool as _run
from hitlgate.errors import InputError

#: OPA's error lines shown when files do not parse.
_SHOWN_ERRORS = 20


@dataclass(frozen=True)
class FmtResult:
    """The files ``opa fmt`` changes (or would change), and the diff when one was asked for."""

    mode: str
    files: tuple[str, ...]
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        doc: dict[str, Any] = {"ok": self.mode == "write" or not self.files, "mode": self.mode,
                               "files": list(self.files)}
        if self.output:
            doc["diff"] = self.output
        return doc


def rego_files(paths: Sequence[Path]) -> list[Path]:
    """The ``.rego`` files under ``paths`` (directories searched recursively), sorted."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.rego") if q.is_file() or q.is_symlink()))
        elif p.suffix == ".rego":
            out.append(p)
    return out


def _opa_failure(run: Any, opa: Path, what: str) -> InputError:
    """The error of an ``opa fmt`` run that failed: OPA's own file:line messages, or an OPA that cannot run."""
    lines = [line.rstrip() for line in (run.stderr + "\n" + run.stdout).splitlines() if line.strip()]
    if not lines:
        return InputError(f"{opa} exited with {run.returncode} and said nothing: is it an OPA binary? "
                          "(check $HITLGATE_OPA)", code="tool_not_runnable")
    shown = "\n  ".join(lines[:_SHOWN_ERRORS]) + (f"\n  ... {len(lines) - _SHOWN_ERRORS} more line(s)"
                                                  if len(lines) > _SHOWN_ERRORS else "")
    return InputError(f"opa fmt cannot {what}:\n  {shown}", code="rego_parse_error")


def format_rego(paths: Sequence[Path], mode: str) -> FmtResult:
    """Run ``opa fmt`` in ``mode`` (check, diff or write) on the Rego files under ``paths``."""
    if mode not in ("check", "diff", "write"):
        raise InputError(f"unknown fmt mode {mode!r}", code="usage")
    opa = require_opa("fmt")
    files = rego_files(paths)
    if not files:
        return FmtResult(mode, ())
    if mode == "write":
        links = [f for f in files if f.is_symlink()]
        if links:
            raise InputError(f"refusing to write {links[0]}: it is a symbolic link "
                             "(policy fmt --write rewrites only regular files)", code="unsafe_path")
    bad = encoding_findings(files)
    if bad:
        raise InputError(f"{bad[0]}" + (f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""),
                         code="bad_encoding")
    listed = _run([str(opa), "fmt", "--list", "--", *map(str, files)])
    if listed.returncode != 0:
        raise _opa_failure(listed, opa, "format the files")
    by_name = {str(f): f for f in files}
    changed = [by_name.get(line.strip(), Path(line.strip())) for line in listed.stdout.splitlines() if line.strip()]
    output: list[str] = []
    for path in changed if mode != "check" else []:
        run = _run([str(opa), "fmt", "--", str(path)])
        if run.returncode != 0:
            raise _opa_failure(run, opa, f"format {display_path(path)}")
        before = path.read_text(encoding="utf-8")
        if mode == "write":
            write_file(path, run.stdout, secret=False, overwrite=True, what="Rego file")
        else:
            name = display_path(path)
            output.extend(difflib.unified_diff(before.splitlines(keepends=True), run.stdout.splitlines(keepends=True),
                                               fromfile=f"a/{name}", tofile=f"b/{name}"))
    text = "".join(line if line.endswith("\n") else line + "\n" for line in output)
    return FmtResult(mode, tuple(display_path(p) for p in changed), text)

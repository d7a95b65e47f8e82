"""``hitlgate policy fmt``: ``opa fmt`` on the pack's Rego (list, diff or write)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hitlgate.engine.decide._locate import display_path
from hitlgate.engine.decide._policycheck import encoding_findings, require_opa
from hitlgate.engine.decide._policycheck import run_tool as _run
from hitlgate.errors import InputError


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
            out.extend(sorted(q for q in p.rglob("*.rego") if q.is_file()))
        elif p.suffix == ".rego":
            out.append(p)
    return out


def format_rego(paths: Sequence[Path], mode: str) -> FmtResult:
    """Run ``opa fmt`` in ``mode`` (check, diff or write) on the Rego files under ``paths``."""
    opa = require_opa()
    files = rego_files(paths)
    if not files:
        return FmtResult(mode, ())
    bad = encoding_findings(files)
    if bad:
        raise InputError(f"{bad[0]}" + (f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""),
                         code="bad_encoding")
    listed = _run([str(opa), "fmt", "--list", *map(str, files)])
    if listed.returncode != 0:
        message = (listed.stderr or listed.stdout).strip().splitlines()
        raise InputError(f"opa fmt cannot format the files: {message[0] if message else listed.returncode}",
                         code="rego_parse_error")
    changed = tuple(display_path(Path(line.strip())) for line in listed.stdout.splitlines() if line.strip())
    output = ""
    if changed and mode == "write":
        _run([str(opa), "fmt", "--write", *changed])
    elif changed and mode == "diff":
        output = _run([str(opa), "fmt", "--diff", *changed]).stdout
    return FmtResult(mode, changed, output)

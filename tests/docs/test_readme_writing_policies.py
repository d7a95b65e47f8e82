"""The README's "Writing policies" section works as written.

Every ``sh`` block of the section runs, in order, in one shell in an empty
directory (so ``cd my-project`` carries over, as it does for a reader), with
this checkout's ``hitlgate`` first on ``PATH``. A ``text`` block that follows
an ``sh`` block directly is its expected output: each of its lines must
appear in what that block printed (runs of spaces compared as one). Every
block exits 0, except one that ends in ``hitlgate decide``, whose exit code
is its decision's; the last block, ``hitlgate policy test``, must pass.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Writing policies"

pytestmark = pytest.mark.opa


@dataclass
class Step:
    """One ``sh`` block and the output the README says it prints."""

    script: str
    expected: list[str]


def _section(text: str) -> str:
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else len(text)]


def steps(text: str) -> list[Step]:
    """The section's ``sh`` blocks, each with the ``text`` block right after it, if any."""
    fence = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
    out: list[Step] = []
    previous_end, previous_lang = 0, ""
    for m in fence.finditer(_section(text)):
        lang, body = m.group(1), m.group(2)
        between = _section(text)[previous_end : m.start()]
        if lang == "sh":
            out.append(Step(body, []))
        elif lang == "text" and previous_lang == "sh" and not between.strip():
            out[-1].expected = [line for line in body.splitlines() if line.strip()]
        previous_end, previous_lang = m.end(), lang
    return out


def _squash(s: str) -> str:
    return re.sub(r"[ \t]+", " ", s.strip())


def test_section_has_the_whole_walk_through() -> None:
    found = steps(README.read_text(encoding="utf-8"))
    scripts = "\n".join(s.script for s in found)
    for command in ("hitlgate init my-project", "customer_data", "hitlgate policy test"):
        assert command in scripts
    assert found[-1].script.strip() == "hitlgate policy test"
    assert all(s.expected for s in found if "hitlgate decide" in s.script or "policy test" in s.script)


def test_every_command_works_as_written(tmp_path: Path) -> None:
    found = steps(README.read_text(encoding="utf-8"))
    marker = "@@hitlgate-readme-step"
    script = "\n".join(f"{s.script}\necho \"{marker} $?\"" for s in found)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The walk-through must not depend on a config or home of the machine running it.
    env.pop("HITLGATE_CONFIG", None)
    env["HITLGATE_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    outputs = re.split(rf"^{marker} (\d+)$\n?", proc.stdout, flags=re.M)
    # re.split with one group: [out0, rc0, out1, rc1, ..., tail]
    assert len(outputs) == 2 * len(found) + 1, proc.stdout + proc.stderr
    for i, step in enumerate(found):
        printed, rc = outputs[2 * i], int(outputs[2 * i + 1])
        squashed = [_squash(line) for line in printed.splitlines()]
        for line in step.expected:
            assert _squash(line) in squashed, f"step {i + 1}: want {line!r} in:\n{printed}{proc.stderr}"
        # `decide` exits with its decision (0 allowed, 3 deny, 4 approval needed);
        # every other step must succeed.
        if not step.script.strip().splitlines()[-1].startswith("hitlgate decide"):
            assert rc == 0, f"step {i + 1} exited {rc}:\n{step.script}\n{printed}{proc.stderr}"
    assert (tmp_path / "my-project" / "policies" / "customer_data.rego").is_file()

"""The hitlgate CLI as a real process, running the very package these tests imported.

Not the console script on PATH: that one runs whichever checkout it was
installed from, which under ``scripts/mutation`` (the suite runs in a
mutated copy) is another tree, possibly at another schema version.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hitlgate

#: argv prefix of ``hitlgate ...`` (what the console script's entry point runs).
HITLGATE = [sys.executable, "-c", "from hitlgate.cli import main; main()"]
#: The directory holding the imported ``hitlgate`` package.
PACKAGE_ROOT = str(Path(hitlgate.__file__).resolve().parents[1])


def cli_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``base`` (default: this process's environment) plus ``extra``, importing hitlgate from PACKAGE_ROOT."""
    env = dict(os.environ if base is None else base)
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
    return env

"""The policy pack stays inside the Rego both engines evaluate identically.

The differential suite catches a divergence on the inputs it tries; this
catches the constructs known to diverge before any input is needed, and
lets the real OPA judge validity (``opa check --strict``), since regopy
accepts pre-1.0 Rego that OPA 1.x rejects.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from hitlgate.engine._resources import starter_policy_dir
from hitlgate.engine.decide._policycheck import DIVERGENT_BUILTINS
from hitlgate.engine.decide.policy import PolicyPack, policy_files


def _starter_modules() -> list[tuple[str, str]]:
    # What `hitlgate init` adds to the pack (the crown_jewel example) must
    # stay inside the same subset: architects copy it.
    return [(p.name, p.read_text(encoding="utf-8")) for p in policy_files(starter_policy_dir())]


@pytest.mark.parametrize("builtin", sorted(DIVERGENT_BUILTINS))
def test_pack_avoids_divergent_builtin(bundled_pack: PolicyPack, builtin: str) -> None:
    pattern = re.compile(r"(?<![\w.])" + re.escape(builtin) + r"\s*\(")
    for name, source in [*bundled_pack.modules, *_starter_modules()]:
        code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
        assert not pattern.search(code), f"{name} calls {builtin}: {DIVERGENT_BUILTINS[builtin]}"


def test_pack_passes_opa_check_strict(opa_bin: Path, bundled_pack: PolicyPack) -> None:
    files = [str(f) for f in [*policy_files(bundled_pack.policy_dir), *policy_files(starter_policy_dir())]]
    result = subprocess.run(
        [str(opa_bin), "check", "--strict", *files], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

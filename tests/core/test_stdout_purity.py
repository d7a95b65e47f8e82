"""stdout purity: under --json nothing but the document reaches stdout, whatever the native engine writes.

Regression for issue 7 item 5: with a Rego syntax error, regopy printed
``Errors: ...`` on stdout (file descriptor 1, below Python) before the
JSON, so ``decide --json`` output was not JSON. The same holds for Rego's
``print``, which rego-cpp also writes to fd 1. These run the real console
script in a subprocess with stdout a pipe, the way an agent runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_proposal
from tests.core._hostile import project


def _hitlgate(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HITLGATE_HOME": str(config.parent / "home")}
    return subprocess.run(
        [sys.executable, "-c", "from hitlgate.cli import main; main()", "--config", str(config), *args],
        input=stdin, capture_output=True, text=True, timeout=120, env=env, check=False,
    )


def _decision_module(pack: Path) -> Path:
    return next(p for p in pack.glob("*.rego") if not p.name.endswith("_test.rego"))


def test_stdout_purity_with_a_rego_syntax_error(tmp_path: Path, pack_copy: Path) -> None:
    module = _decision_module(pack_copy)
    module.write_text(module.read_text() + "\nbroken := {\n")
    proc = _hitlgate(project(tmp_path, pack_copy), "decide", "--json", "-", stdin=json.dumps(make_proposal()))
    decision = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert decision["tier"] == "deny"
    assert "Errors:" not in proc.stdout
    assert "unclosed" not in proc.stdout
    assert "'{' is not closed" in decision["fail_closed"]["reason"], decision


def test_stdout_purity_with_rego_print(tmp_path: Path, pack_copy: Path) -> None:
    module = _decision_module(pack_copy)
    module.write_text(module.read_text() + '\nprinted if {\n\tprint("POLICY-SAYS", input.action.type)\n}\n'
                      "\ndecision := d if {\n\tprinted\n\td := _hitlgate_print_probe\n}\n")
    source = module.read_text()
    # Route the real decision through a rule that prints first, without changing what it decides.
    source = source.replace("\ndecision := ", "\n_hitlgate_print_probe := ", 1)
    module.write_text(source)
    proc = _hitlgate(project(tmp_path, pack_copy), "decide", "--json", "-", stdin=json.dumps(make_proposal()))
    decision = json.loads(proc.stdout)
    assert decision["tier"] == "dual_approval", proc.stderr
    assert "POLICY-SAYS" not in proc.stdout
    assert "POLICY-SAYS rotate_api_key" in proc.stderr


def test_stdout_purity_of_policy_test_json_with_a_broken_pack(tmp_path: Path, pack_copy: Path) -> None:
    module = _decision_module(pack_copy)
    module.write_text(module.read_text() + "\nbroken := {\n")
    proc = _hitlgate(project(tmp_path, pack_copy), "policy", "test", "--json", "--no-rego-tests")
    assert proc.returncode == 5, proc.stderr
    assert "Errors:" not in proc.stdout
    assert "unclosed" not in proc.stdout
    if proc.stdout.strip():  # an error document under --json, or nothing
        json.loads(proc.stdout)

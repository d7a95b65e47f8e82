"""``hitlgate policy test`` with ``$HITLGATE_OPA`` pointing at no OPA says so, as ``policy check`` does.

Before the fix a path to nothing gave a bare ``could not run /x: [Errno 2]
...``, and a program that is not OPA (here ``true``) made ``policy test``
report "rego unit tests: FAILED (1 of 0 tests failed)" with the line
"exit code 0", exit 3, as if a unit test had failed. Both are now
``opa_not_runnable`` (exit 1) naming ``$HITLGATE_OPA`` and what to do.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.cli_project import make_project


def test_hitlgate_opa_pointing_at_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    missing = tmp_path / "no-opa-here"
    result = project.invoke(["--json", "policy", "test"], env={"HITLGATE_OPA": str(missing)})
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "opa_not_runnable"
    assert error["message"].startswith(f"could not run {missing}: ")
    assert error["message"].endswith("($HITLGATE_OPA points at it: fix or unset it, or run `hitlgate opa install`); "
                                     "--no-rego-tests runs only the scenario corpus")


def test_hitlgate_opa_pointing_at_a_program_that_is_not_opa(tmp_path: Path) -> None:
    true = shutil.which("true")
    assert true is not None
    project = make_project(tmp_path)
    result = project.invoke(["--json", "policy", "test"], env={"HITLGATE_OPA": true})
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "opa_not_runnable"
    assert error["message"].startswith(f"could not run {true}: it exited with 0 and said nothing: is it an OPA "
                                       "binary? ($HITLGATE_OPA points at it")

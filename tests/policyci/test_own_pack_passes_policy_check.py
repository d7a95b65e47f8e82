"""The repository's own pack (the bundled policies/) passes ``hitlgate policy check``, so CI can hold it to that."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine._resources import bundled_policy_dir
from tests.policyci.conftest import working_directory

#: Real OPA (opa check, fmt, test and a server) runs in every check.
pytestmark = pytest.mark.opa


def test_bundled_pack_passes_every_check() -> None:
    repo = bundled_policy_dir().parent
    with working_directory(repo):
        result = CliRunner().invoke(cli, ["policy", "check", "--format", "json"], env={"HITLGATE_CONFIG": None})
    doc = json.loads(result.stdout)
    failed = [s for s in doc["steps"] if s["status"] == "failed"]
    assert result.exit_code == 0 and not failed, json.dumps(failed, indent=2)
    statuses = {s["id"]: s["status"] for s in doc["steps"]}
    for step in ("data", "opa-check", "opa-fmt", "regopy", "engines", "subset", "opa-test", "coverage",
                 "scenarios-embedded", "scenarios-opa", "scenarios-agree"):
        assert statuses[step] == "passed", step
    assert doc["policy"] == "policies"

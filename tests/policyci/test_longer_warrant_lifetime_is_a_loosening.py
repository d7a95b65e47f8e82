"""Threat: a pull request that only lengthens a tier's warrant lifetime passes policy CI.

The tier, the quorum and every unit test stay as they were (the test is
updated with the change); only ``warrant_ttl_by_tier`` grows from 10 minutes
to an hour for single approvals, so a granted credential revocation stays
runnable six times longer. Before the fix the decision diff did not compare
warrant lifetimes at all: the run passed and reported nothing. It is now a
loosening (and the reverse change a tightening), named in words.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policyci.conftest import clone, edit, run_check

pytestmark = pytest.mark.opa

RULE = '"single_approval": 600,\n\t"dual_approval": 900,'
TEST = "[single.ttl_seconds, single.warrant_ttl_seconds] == [3600, 600]"


@pytest.mark.parametrize(("seconds", "direction", "exit_code"), [(3600, "loosening", 1), (120, "tightening", 0)])
def test_warrant_lifetime_change_is_classified(base_repo: Path, tmp_path_factory: pytest.TempPathFactory,
                                               seconds: int, direction: str, exit_code: int) -> None:
    project = clone(base_repo, tmp_path_factory.mktemp(direction) / "repo")
    edit(project / "policies" / "decision.rego", RULE, RULE.replace("600", str(seconds)))
    edit(project / "policies" / "decision_test.rego", TEST, TEST.replace("600]", f"{seconds}]"))
    run = run_check(project, "--base", "main")
    assert run.exit_code == exit_code, run.stdout
    assert run.doc["checks_ok"] is True
    changes = run.doc["diff"]["changes"]
    assert changes, run.stdout
    assert {c["direction"] for c in changes} == {direction}
    assert {(c["base_tier"], c["head_tier"]) for c in changes} == {("single_approval", "single_approval")}
    for c in changes:
        assert c["warrant_ttl_seconds"] == {"base": 600, "head": seconds}
        assert f"the warrant lifetime changed: 600s → {seconds}s" in c["summary"]

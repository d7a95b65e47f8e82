"""A broken pack must not look like a policy deny: decide and propose exit 5 and say why.

Before, ``decide`` against a pack that did not compile printed a deny with
``policy: sha256:000...`` and exited 0, so a CI job could not tell "the
policy is broken" from "the policy says no".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine import Decision
from hitlgate.errors import PolicyError
from tests.conftest import make_proposal


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    (proj / "proposal-deny.json").write_text(json.dumps(make_proposal("revoke_secret", "break-glass-admin")))
    return proj


def _decide(proj: Path, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["--config", str(proj / "hitlgate.yaml"), *args])
    return result.exit_code, json.loads(result.stdout)


def test_a_policy_deny_exits_3_without_fail_closed(project: Path) -> None:
    code, decision = _decide(project, "decide", "--json", str(project / "proposal-deny.json"))
    assert (code, decision["tier"]) == (3, "deny")
    assert "fail_closed" not in decision


def test_rego_syntax_error_exits_5_and_says_policy_broken(project: Path) -> None:
    rego = project / "policies" / "decision.rego"
    rego.write_text(rego.read_text() + "\nthis is not rego {\n")
    code, decision = _decide(project, "decide", "--json", str(project / "proposal.json"))
    assert code == 5
    assert decision["tier"] == "deny"
    assert decision["fail_closed"]["code"] == "policy_broken"
    assert "does not compile" in decision["fail_closed"]["reason"]


def test_undefined_decision_exits_5(project: Path) -> None:
    rego = project / "policies" / "decision.rego"
    rego.write_text(rego.read_text().replace("decision :=", "renamed_decision :=", 1))
    code, decision = _decide(project, "decide", "--json", str(project / "proposal.json"))
    assert (code, decision["fail_closed"]["code"]) == (5, "policy_broken")
    assert "undefined" in decision["fail_closed"]["reason"]


def test_propose_against_a_broken_pack_stores_a_denied_request_and_exits_5(project: Path) -> None:
    rego = project / "policies" / "decision.rego"
    rego.write_text(rego.read_text() + "\nthis is not rego {\n")
    code, request = _decide(project, "propose", "--json", str(project / "proposal.json"))
    assert code == 5
    assert request["status"] == "denied"
    assert request["decision"]["fail_closed"]["code"] == "policy_broken"
    # Read back from the store, the decision still says it failed closed.
    code, shown = _decide(project, "show", "--json", request["id"])
    assert code == 0 and shown["decision"]["fail_closed"] == request["decision"]["fail_closed"]


def test_unreachable_opa_exits_1_and_still_prints_the_deny(project: Path) -> None:
    code, decision = _decide(
        project, "decide", "--json", "--opa-url", "http://127.0.0.1:9", str(project / "proposal.json")
    )
    assert code == 1
    assert decision["tier"] == "deny"
    assert decision["fail_closed"]["code"] == "backend_unavailable"


def test_a_policy_cannot_claim_to_have_failed_closed() -> None:
    # A deliberate deny dressed up as "fail_closed" would read as a broken
    # pack to CI; the engine refuses the output instead (and fails closed itself).
    output = Decision.failed_closed("x").to_dict()
    del output["policy_revision"]
    with pytest.raises(PolicyError, match="sets fail_closed, which only the engine may set"):
        Decision.from_policy_output(output, "sha256:" + "1" * 64)


def test_a_fail_closed_decision_must_be_deny() -> None:
    doc = Decision.failed_closed("x").to_dict() | {"tier": "auto_allow"}
    with pytest.raises(PolicyError, match="a fail-closed decision must be deny, not auto_allow"):
        Decision.from_dict(doc)

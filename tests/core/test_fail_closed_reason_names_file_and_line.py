"""A broken pack is named the same way by ``decide`` (fail-closed reason) and ``policy test``.

Both say ``policies/x.rego:line:col`` and ``policies/data/x.yaml:line``,
relative to the working directory, so a user can jump to the place from
either; a multi-line reason stays indented under its bullet in ``decide``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hitlgate.cli import cli


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    monkeypatch.chdir(proj)
    return proj


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", "hitlgate.yaml", *args])


def test_rego_syntax_error_named_alike_by_decide_and_policy_test(project: Path) -> None:
    (project / "policies" / "customer_data.rego").write_text(
        'package hitlgate\n\nfactor_present contains "x" if {\n\tinput.action.type == \n}\n', encoding="utf-8"
    )
    place = "policies/customer_data.rego:4:20: Invalid boolean operator"
    decided = _run("decide", "proposal.json")
    assert decided.exit_code == 5, decided.output
    assert f"    - fail closed: embedded backend: policy does not compile (regopy): {place}\n" in decided.stdout
    tested = _run("policy", "test", "--no-rego-tests")
    assert tested.exit_code == 5
    assert f"\n  {place}\n" in tested.output


def test_inventory_error_named_alike_and_indented_under_its_bullet(project: Path) -> None:
    (project / "policies" / "data" / "exports.yaml").write_text(
        "identities:\n  foo-key:\n    kind: secret\n    environment: production\n    owner: team-payments\n"
        "    privilege: medium\n    used_by: []\n    bogus: 1\n",
        encoding="utf-8",
    )
    place = (
        "policies/data/exports.yaml:8: identities.foo-key: Additional properties are not allowed "
        "('bogus' was unexpected)"
    )
    decided = _run("decide", "proposal.json")
    assert decided.exit_code == 5, decided.output
    lines = decided.stdout.splitlines()
    reasons = lines[lines.index("  reasons:") + 1 : lines.index("  reasons:") + 3]
    assert reasons[0].startswith("    - fail closed: embedded backend: ")
    assert reasons[0].endswith("invalid inventory: 1 problem(s)")
    assert reasons[1] == f"        - {place}"
    tested = _run("policy", "test", "--no-rego-tests")
    assert tested.exit_code == 5
    assert f"\n  - {place}\n" in tested.output

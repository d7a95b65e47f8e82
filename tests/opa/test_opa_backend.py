"""The OPA backend against a real OPA server, and the CLI commands on it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine import BackendConfig, Config, Decider
from hitlgate.engine.decide._opa import OpaBackend
from hitlgate.engine.decide._regopy import RegopyBackend
from hitlgate.engine.decide.backends import PolicyBackend
from hitlgate.engine.decide.decider import backend_from_config
from hitlgate.engine.decide.policy import PolicyPack
from hitlgate.errors import ConfigError
from tests.conftest import make_proposal
from tests.opa.conftest import OpaServer


def _opa_config(url: str, timeout_ms: int = 2000) -> Config:
    return dataclasses.replace(Config(), backend=BackendConfig(kind="opa", url=url, timeout_ms=timeout_ms))


def test_backend_from_config_builds_the_opa_backend(opa_server: OpaServer, bundled_pack: PolicyPack) -> None:
    backend = backend_from_config(_opa_config(opa_server.url))
    try:
        assert isinstance(backend, OpaBackend)
        assert isinstance(backend, PolicyBackend)
        assert backend.name == "opa"
        assert backend.expected_revision == bundled_pack.revision
    finally:
        backend.close()


def test_opa_decision_matches_the_policy(opa_server: OpaServer, bundled_pack: PolicyPack) -> None:
    decider = Decider.from_config(_opa_config(opa_server.url))
    try:
        decision = decider.decide(make_proposal("rotate_api_key", "svc-payments-key"))
    finally:
        decider.close()
    assert decision.tier == "dual_approval"
    assert set(decision.risk_factors) == {"production_credential", "customer_facing", "high_privilege"}
    assert decision.policy_revision == bundled_pack.revision
    assert decision.quorum.required == 2


def test_connection_is_reused_across_decisions(opa_server: OpaServer) -> None:
    backend = OpaBackend.from_config(_opa_config(opa_server.url))
    try:
        for _ in range(5):
            backend.evaluate(make_proposal())
        pool = backend._client._session.get_adapter(opa_server.url).poolmanager
        (conn_pool,) = pool.pools._container.values()
        # One keep-alive connection served every request.
        assert conn_pool.num_connections == 1
        assert conn_pool.num_requests == 5
    finally:
        backend.close()


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:8181", "http://127.0.0.1:8181/v1/data", "not a url", "http://:8181"])
def test_bad_backend_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^backend\.url must (be http\(s\)://host\[:port\]|not have a path)"):
        OpaBackend(url, expected_revision="sha256:x")


def test_opa_backend_needs_exactly_one_revision_source() -> None:
    with pytest.raises(ConfigError, match="needs exactly one of expected_revision, pack or policy_dir"):
        OpaBackend("http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="needs exactly one of expected_revision, pack or policy_dir"):
        OpaBackend("http://127.0.0.1:1", expected_revision="a", policy_dir=Path("."))


def test_inventory_edit_needs_no_new_bundle(own_opa: OpaServer, pack_copy: Path) -> None:
    """The bundle holds the modules only: an inventory change decides at once, with its revision."""
    backend = OpaBackend(own_opa.url, policy_dir=pack_copy, data_paths=(pack_copy / "data",))
    try:
        before = backend.expected_revision
        assert Decider(backend).decide(make_proposal()).tier == "dual_approval"
        inv = pack_copy / "data" / "inventory.yaml"
        text = inv.read_text(encoding="utf-8")
        inv.write_text(text.replace("protected:\n", "protected:\n  - svc-payments-key\n"), encoding="utf-8")
        after = backend.expected_revision
        assert after != before
        # OPA still serves the same modules: no redeploy, the new fact decides.
        fresh = Decider(backend).decide(make_proposal())
        assert fresh.tier == "deny" and "protected_target" in fresh.risk_factors
        assert fresh.policy_revision == after == PolicyPack.load(pack_copy, [pack_copy / "data"]).revision
    finally:
        backend.close()


def test_module_edit_makes_opa_stale_until_redeployed(own_opa: OpaServer, pack_copy: Path) -> None:
    backend = OpaBackend(own_opa.url, policy_dir=pack_copy, data_paths=(pack_copy / "data",))
    try:
        before = backend.expected_revision
        rego = pack_copy / "decision.rego"
        rego.write_text(
            rego.read_text(encoding="utf-8").replace(
                "deny_row if protected_target",
                'deny_row if protected_target\n\ndeny_row if target_id == "svc-payments-key"',
            ),
            encoding="utf-8",
        )
        after = backend.expected_revision
        assert after != before
        # OPA still serves the old modules: the engine must now refuse it.
        stale = Decider(backend).decide(make_proposal())
        assert stale.tier == "deny"
        assert "revision mismatch" in stale.reasons[0]
        own_opa.serve_pack(PolicyPack.load(pack_copy, [pack_copy / "data"]))
        fresh = Decider(backend).decide(make_proposal())
        assert fresh.tier == "deny" and "revision mismatch" not in fresh.reasons[0]
        assert fresh.policy_revision == after
    finally:
        backend.close()


# -- CLI --------------------------------------------------------------------


def _write_proposal(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "proposal.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def test_cli_decide_with_opa_backend_matches_embedded(opa_server: OpaServer, tmp_path: Path) -> None:
    runner = CliRunner()
    proposal = _write_proposal(tmp_path, make_proposal("disable_federated_credential", "fed-globex-settlement"))
    env = {"HITLGATE_CONFIG": ""}
    via_opa = runner.invoke(
        cli, ["decide", "--json", "--backend", "opa", "--opa-url", opa_server.url, proposal], env=env
    )
    embedded = runner.invoke(cli, ["decide", "--json", proposal], env=env)
    assert via_opa.exit_code == 4, via_opa.output
    assert embedded.exit_code == 4, embedded.output
    assert json.loads(via_opa.stdout) == json.loads(embedded.stdout)
    assert json.loads(via_opa.stdout)["tier"] == "dual_approval"


def test_cli_decide_via_config_file(opa_server: OpaServer, tmp_path: Path) -> None:
    from hitlgate.engine._resources import bundled_policy_dir

    config = tmp_path / "hitlgate.yaml"
    config.write_text(
        f"policy: {bundled_policy_dir()}\nbackend: {{kind: opa, url: '{opa_server.url}', timeout_ms: 2000}}\n",
        encoding="utf-8",
    )
    proposal = _write_proposal(tmp_path, make_proposal("notify_owner", "svc-payments-key"))
    result = CliRunner().invoke(cli, ["--config", str(config), "decide", "--json", proposal])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tier"] == "auto_allow"


def test_doctor_reports_a_healthy_opa(opa_server: OpaServer, bundled_pack: PolicyPack) -> None:
    result = CliRunner().invoke(cli, ["doctor", "--json", "--opa-url", opa_server.url], env={"HITLGATE_CONFIG": ""})
    # Healthy, but the example pack is never production-ready (exit 1).
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["backend"] == "opa"
    assert report["answers"] and report["matches"] and report["healthy"]
    assert not report["production_ready"]
    # OPA serves the modules revision (the bundle holds no inventory).
    assert report["served_revisions"] == [bundled_pack.modules_revision]
    assert report["local_revision"] == bundled_pack.modules_revision


def test_doctor_reports_a_healthy_embedded_backend() -> None:
    result = CliRunner().invoke(cli, ["doctor"], env={"HITLGATE_CONFIG": ""})
    assert result.exit_code == 1, result.output
    assert "embedded" in result.stdout and "status:         healthy" in result.stdout
    assert "production:     NOT READY" in result.stdout


def test_doctor_fails_when_opa_is_unreachable() -> None:
    from tests.opa.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["doctor", "--json", "--opa-url", url], env={"HITLGATE_CONFIG": ""})
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["answers"] and not report["healthy"]
    assert "unreachable" in report["problems"][0]


def test_doctor_fails_on_a_stale_opa(own_opa: OpaServer, pack_copy: Path, tmp_path: Path) -> None:
    rego = pack_copy / "decision.rego"
    rego.write_text(rego.read_text(encoding="utf-8") + "\n# A local edit OPA has not been given.\n", encoding="utf-8")
    config = tmp_path / "hitlgate.yaml"
    config.write_text(f"policy: {pack_copy}\nbackend: {{kind: opa, url: '{own_opa.url}'}}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "doctor"])
    assert result.exit_code == 1
    assert "matches:        no" in result.stdout
    assert "revision mismatch" in result.stdout


def test_embedded_and_opa_name_the_same_revision(opa_server: OpaServer, bundled_pack: PolicyPack) -> None:
    embedded = RegopyBackend(bundled_pack.policy_dir, list(bundled_pack.data_paths))
    opa = OpaBackend(opa_server.url, pack=bundled_pack, timeout_ms=2000)
    try:
        assert embedded.evaluate(make_proposal())[1] == opa.evaluate(make_proposal())[1]
    finally:
        opa.close()
        embedded.close()

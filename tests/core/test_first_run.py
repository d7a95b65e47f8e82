"""The first hour: init's project files and approver keys in a folder that does not exist yet."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.cli import cli
from hitlgate.engine import Config
from hitlgate.engine.decide.inventory import encode_public_key
from hitlgate.engine.keys._demokeys import EXAMPLE_APPROVERS, demo_approver_key
from hitlgate.engine.keys.keyring import public_raw
from tests.conftest import make_proposal


def test_keys_generate_creates_a_missing_private_directory(tmp_path: Path) -> None:
    out = tmp_path / "home" / ".hitlgate" / "alice.pem"
    result = CliRunner().invoke(cli, ["keys", "generate", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["public_key"].startswith("ed25519:")
    for d in (out.parent, out.parent.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_keys_generate_leaves_an_existing_directory_mode_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    result = CliRunner().invoke(cli, ["keys", "generate", "--out", str(shared / "bob.pem")])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755


def test_init_keeps_private_keys_and_state_out_of_git(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    result = CliRunner().invoke(cli, ["init", str(proj)])
    assert result.exit_code == 0, result.output
    ignored = (proj / ".gitignore").read_text().splitlines()
    assert {"/keys/", "/state/", "*.pem", "*.jws"} <= set(ignored)
    assert json.loads((proj / "proposal.json").read_text())["action"]["type"] == "rotate_api_key"
    assert "hitlgate opa install" in result.output


def test_init_appends_to_an_existing_gitignore(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / ".gitignore").write_text("node_modules/\n/keys/\n")
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    lines = (proj / ".gitignore").read_text().splitlines()
    assert lines[0] == "node_modules/"
    assert lines.count("/keys/") == 1 and "/state/" in lines


def test_init_force_moves_the_users_own_files_aside_and_deletes_nothing(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    # The user's own work: a rule, its tests, a data file, and an edited config.
    (proj / "policies" / "customer_data.rego").write_text("package hitlgate\n")
    (proj / "policies" / "data" / "exports.yaml").write_text("identities: {}\n")
    (proj / "hitlgate.yaml").write_text((proj / "hitlgate.yaml").read_text() + "# mine\n")
    refused = CliRunner().invoke(cli, ["--json", "init", str(proj)])
    assert refused.exit_code == 2 and json.loads(refused.stdout)["error"]["code"] == "file_exists"
    result = CliRunner().invoke(cli, ["--json", "init", str(proj), "--force"])
    assert result.exit_code == 0, result.output
    moved = [Path(p) for p in json.loads(result.stdout)["moved_aside"]]
    assert [p.name.split(".replaced-")[0] for p in moved] == ["policies", "hitlgate.yaml"]
    old_pack, old_config = moved
    assert (old_pack / "customer_data.rego").read_text() == "package hitlgate\n"
    assert (old_pack / "data" / "exports.yaml").exists()
    assert old_config.read_text().endswith("# mine\n")
    # The fresh project is the starter, without the user's files.
    assert not (proj / "policies" / "customer_data.rego").exists()
    assert "# mine" not in (proj / "hitlgate.yaml").read_text()
    # A second --force in the same second finds a free name too.
    again = CliRunner().invoke(cli, ["init", str(proj), "--force"])
    assert again.exit_code == 0 and "moved the previous policies aside to" in again.output
    assert len(list(proj.glob("policies.replaced-*"))) == 2


def test_policy_test_without_opa_names_hitlgate_opa_install(tmp_path: Path) -> None:
    env = {"HITLGATE_OPA": None, "HITLGATE_CACHE": str(tmp_path / "cache"), "PATH": str(tmp_path / "nowhere")}
    result = CliRunner().invoke(cli, ["policy", "test"], env=env)
    assert result.exit_code == 1
    assert "run `hitlgate opa install`" in result.stderr
    assert "any opa on PATH or in $HITLGATE_OPA" in result.stderr


# -- the example pack outside `demo` ------------------------------------------


def _project_with_real_keys(tmp_path: Path) -> Path:
    """`hitlgate init` a project and replace every demo key with a freshly generated one."""
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    inv = proj / "policies" / "data" / "inventory.yaml"
    text = inv.read_text()
    for name in EXAMPLE_APPROVERS:
        real = Ed25519PrivateKey.generate().public_key()
        demo = demo_approver_key(name).public_key()
        text = text.replace(encode_public_key(public_raw(demo)), encode_public_key(public_raw(real)))
    inv.write_text(text)
    return proj


def test_every_command_on_the_example_pack_warns_on_stderr_only(tmp_path: Path) -> None:
    doc = json.dumps(make_proposal("invalidate_tokens", "staging-deploy-token"))
    for config in ("", str(tmp_path / "empty.yaml")):
        (tmp_path / "empty.yaml").write_text("")
        result = CliRunner().invoke(cli, ["decide", "--json", "-"], input=doc, env={"HITLGATE_CONFIG": config})
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["tier"] == "auto_allow"
        assert "WARNING: EXAMPLE POLICY PACK IN USE" in result.stderr
        assert "demo keys" in result.stderr


def test_a_project_of_its_own_gets_no_warning_and_demo_gets_none(tmp_path: Path) -> None:
    proj = _project_with_real_keys(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(proj / "hitlgate.yaml"), "decide", str(proj / "proposal.json")])
    assert result.exit_code == 4, result.output  # dual approval required
    assert "WARNING" not in result.stderr
    demo = CliRunner().invoke(cli, ["demo", "--decisions-only"], env={"HITLGATE_CONFIG": ""})
    assert demo.exit_code == 0 and "WARNING" not in demo.stderr


def test_doctor_calls_demo_keys_not_production_ready(tmp_path: Path) -> None:
    proj = tmp_path / "demo-keys"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    result = CliRunner().invoke(cli, ["--config", str(proj / "hitlgate.yaml"), "doctor", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["healthy"] and not report["production_ready"]
    assert "approvers with demo keys" in report["not_production_ready"][0]
    assert "alice, bob, carol" in report["not_production_ready"][0]


def test_doctor_passes_a_project_with_real_keys(tmp_path: Path) -> None:
    proj = _project_with_real_keys(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(proj / "hitlgate.yaml"), "doctor"])
    assert result.exit_code == 0, result.output
    assert "production:     ready" in result.stdout


def test_example_pack_state_stays_out_of_the_approver_key_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HITLGATE_HOME", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = Config()
    assert config.key_dir == tmp_path / ".local" / "state" / "hitlgate" / "keys"
    assert config.state_url == f"sqlite:///{tmp_path / '.local' / 'state' / 'hitlgate' / 'state.db'}"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert Config().key_dir == tmp_path / "xdg" / "hitlgate" / "keys"
    assert ".hitlgate" not in str(Config().key_dir)


def test_doctor_calls_a_never_imported_database_inventory_unhealthy(tmp_path: Path) -> None:
    # inventory.source: database with nothing imported: every decision fails closed, so doctor must not say healthy.
    proj = _project_with_real_keys(tmp_path)
    config = proj / "hitlgate.yaml"
    config.write_text(config.read_text() + "\ninventory: {source: database}\n")
    args = ["--config", str(config)]
    decided = CliRunner().invoke(cli, [*args, "decide", "--json", str(proj / "proposal.json")])
    assert decided.exit_code == 5, decided.output
    result = CliRunner().invoke(cli, [*args, "doctor"])
    assert result.exit_code == 1, result.output
    assert "NOT HEALTHY" in result.stdout
    assert "the inventory in the database is empty" in result.stdout
    assert "hitlgate inventory import" in result.stdout
    report = json.loads(CliRunner().invoke(cli, [*args, "--json", "doctor"]).stdout)
    assert not report["healthy"] and not report["production_ready"]
    # Once imported, the same project is healthy again.
    imported = CliRunner().invoke(cli, [*args, "inventory", "import", str(proj / "policies" / "data")])
    assert imported.exit_code == 0, imported.output
    healed = CliRunner().invoke(cli, [*args, "doctor"])
    assert healed.exit_code == 0, healed.output
    assert "status:         healthy" in healed.stdout

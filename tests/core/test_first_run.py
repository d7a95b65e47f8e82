"""The first hour: init's project files and approver keys in a folder that does not exist yet."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from click.testing import CliRunner

from hitlgate.cli import cli


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
    assert {"/keys/", "/state/", "*.pem"} <= set(ignored)
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


def test_policy_test_without_opa_names_hitlgate_opa_install(tmp_path: Path) -> None:
    env = {"HITLGATE_OPA": None, "HITLGATE_CACHE": str(tmp_path / "cache"), "PATH": str(tmp_path / "nowhere")}
    result = CliRunner().invoke(cli, ["policy", "test"], env=env)
    assert result.exit_code == 1
    assert "run `hitlgate opa install`" in result.stderr
    assert "any opa on PATH or in $HITLGATE_OPA" in result.stderr

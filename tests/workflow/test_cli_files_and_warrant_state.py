"""Files the CLI writes (one safe writer), the warrant's state in show/requests, one refusal line, --version.

Attacks and faults: a symlink planted at an --out path (a warrant written
over another file), an --out that silently replaces a file, a key folder
that does not exist yet; ``show`` saying ``granted`` after the warrant was
used; a refusal printed twice on stderr.
"""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine import Config
from hitlgate.engine._files import write_file
from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import InputError
from tests._cli_process import HITLGATE, cli_env
from tests.cli_project import Project, make_project
from tests.workflow._helpers import proposal


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "p")


@pytest.fixture
def env(project: Project) -> dict[str, str]:
    return {"HITLGATE_CONFIG": str(project.config)}


def key(project: Project, name: str) -> str:
    return str(project.keys[name])


def run(env: dict[str, str], *args: str, code: int = 0) -> str:
    """stdout and stderr of one run (stderr also carries the example-pack warning)."""
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def run_json(env: dict[str, str], *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(cli, [*args, "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def granted(env: dict[str, str], tmp_path: Path) -> str:
    p = tmp_path / "auto.json"
    p.write_text(json.dumps(proposal("rotate_api_key", "dev-analytics-key")))
    return str(run_json(env, "propose", str(p))["id"])


# -- one safe writer -------------------------------------------------------------


@pytest.mark.parametrize("command", ["warrant", "approve", "audit export"])
def test_out_refuses_a_planted_symlink(project: Project, env: dict[str, str], tmp_path: Path, command: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "out"
    link.symlink_to(victim)
    rid = granted(env, tmp_path)
    args = {
        "warrant": ["warrant", rid, "--out", str(link), "--force"],
        "approve": ["approve", rid, "--as", "carol", "--key", key(project, "carol"),
                    "--digest", "sha256:" + "0" * 64, "--out", str(link), "--force"],
        "audit export": ["audit", "export", "--out", str(link), "--force"],
    }[command]
    err = run_json(env, *args, code=2)["error"]
    assert (err["code"], err["exit_code"]) == ("unsafe_path", 2)
    assert "is a symbolic link" in err["message"]
    assert victim.read_text() == "precious\n" and link.is_symlink()


@pytest.mark.parametrize("command", ["approve", "audit export"])
def test_out_does_not_overwrite_without_force(
    project: Project, env: dict[str, str], tmp_path: Path, command: str
) -> None:
    rid = granted(env, tmp_path)
    out = tmp_path / "existing"
    out.write_text("keep\n")
    args = {
        "approve": ["approve", rid, "--as", "carol", "--key", key(project, "carol"),
                    "--digest", "sha256:" + "0" * 64, "--out", str(out)],
        "audit export": ["audit", "export", "--out", str(out)],
    }[command]
    assert "refusing to overwrite" in run(env, *args, code=2)
    assert out.read_text() == "keep\n"
    run(env, *args, "--force")
    assert out.read_text() != "keep\n"


def test_keys_generate_creates_missing_folders_0700(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "home" / ".hitlgate" / "alice.pem"
    run(env, "keys", "generate", "--out", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(out.parent.parent.stat().st_mode) == 0o700


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "w.jws"
    write_file(target, "one\n", secret=True)
    write_file(target, "two\n", secret=True, overwrite=True)
    assert target.read_text() == "two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.jws"]
    with pytest.raises(InputError, match="refusing to overwrite file"):
        write_file(target, "three\n", secret=True)


def test_a_directory_at_the_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="not a regular file"):
        write_file(tmp_path / "d", "x", secret=False, overwrite=True)


# -- warrant state in show and requests ----------------------------------------


def test_show_and_requests_follow_the_warrant_from_none_to_executed(
    project: Project, env: dict[str, str], tmp_path: Path
) -> None:
    p = tmp_path / "p.json"
    p.write_text(json.dumps(proposal("suspend_service_account", "svc-ci-runner")))
    rid = run_json(env, "propose", str(p), code=4)["id"]

    def state() -> dict:
        shown = run_json(env, "show", rid)["warrant"]
        [listed] = [r for r in run_json(env, "requests") if r["id"] == rid]
        assert listed["warrant"] == shown
        return shown

    assert state() == {"state": "none"}
    run(env, "approve", rid, "--as", "carol", "--key", key(project, "carol"))
    token = run_json(env, "warrant", rid)["token"]
    assert state()["state"] == "issued"
    assert "issued, unused" in run(env, "show", rid)
    action = tmp_path / "a.json"
    action.write_text(json.dumps(proposal("suspend_service_account", "svc-ci-runner")["action"]))
    run(env, "verify", str(action), "--warrant", token, "--consume")
    consumed = state()
    assert (consumed["state"], consumed["outcome"]) == ("consumed", None)
    assert "no outcome reported yet" in run(env, "show", rid)
    assert f"{rid}  granted" in run(env, "requests") and "warrant consumed" in run(env, "requests")

    # The executor reports through the guard: the outcome shows up too.
    token2_rid = granted(env, tmp_path)
    token2 = run_json(env, "warrant", token2_rid)["token"]
    with Engine.from_config(Config.from_file(project.config)) as engine:
        engine.guard().execute(token2, proposal("rotate_api_key", "dev-analytics-key")["action"], lambda a: None)
    executed = run_json(env, "show", token2_rid)["warrant"]
    assert (executed["state"], executed["outcome"]) == ("consumed", "executed")
    assert "warrant consumed:executed" in run(env, "requests")


# -- each refusal once on stderr -------------------------------------------------


def _hitlgate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI, fixed argv.
        [*HITLGATE, *args], capture_output=True, text=True, timeout=120, check=False, env=cli_env(**env),
    )


def test_a_replay_is_reported_once_on_stderr_unless_verbose(env: dict[str, str], tmp_path: Path) -> None:
    rid = granted(env, tmp_path)
    token = run_json(env, "warrant", rid)["token"]
    action = tmp_path / "a.json"
    action.write_text(json.dumps(proposal("rotate_api_key", "dev-analytics-key")["action"]))
    run(env, "verify", str(action), "--warrant", token, "--consume")
    replay = _hitlgate(env, "verify", str(action), "--warrant", token, "--consume")
    assert replay.returncode == 3
    assert replay.stderr.count("already used") == 1, replay.stderr
    assert replay.stderr.startswith("error: ") and replay.stderr.count("\n") == 1, replay.stderr
    verbose = _hitlgate(env, "-v", "verify", str(action), "--warrant", token, "--consume")
    assert verbose.returncode == 3
    assert verbose.stderr.count("already used") >= 2, verbose.stderr


# -- --version ----------------------------------------------------------------------


def test_version_names_regopy_opa_and_the_policy_revision(env: dict[str, str], tmp_path: Path) -> None:
    report = json.loads(CliRunner().invoke(cli, ["--json", "--version"], env=env).stdout)
    assert report["regopy"][0].isdigit()
    assert report["policy"]["revision"].startswith("sha256:")
    no_opa = {**env, "HITLGATE_OPA": None, "HITLGATE_CACHE": str(tmp_path / "c"), "PATH": str(tmp_path / "x")}
    text = CliRunner().invoke(cli, ["--version"], env=no_opa).stdout
    assert "opa:     not found" in text
    assert text.startswith("hitlgate, version ")

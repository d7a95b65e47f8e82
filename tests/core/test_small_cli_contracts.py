"""Small contracts a new user hit: ``python -m hitlgate``, lowercase error codes, a lock wait that says what it was.

Found by stop 32's new-user review: ``python -m hitlgate`` failed (no
``__main__``), a JWKS that did not parse was refused with the code
``invalid_JWKS`` (every other code is lowercase), and a write that gave up
waiting for another writer said only "database is locked".
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.cli._common import read_json_arg
from hitlgate.engine.ledger import store as store_mod
from hitlgate.engine.ledger.store import Store
from hitlgate.errors import StorageError, ValidationError


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "hitlgate", "--help"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: hitlgate ")
    assert "propose" in done.stdout


def test_a_document_named_in_capitals_is_refused_with_a_lowercase_code(tmp_path: Path) -> None:
    bad = tmp_path / "jwks.json"
    bad.write_text("{not json")
    with pytest.raises(ValidationError) as refused:
        read_json_arg(str(bad), "JWKS")
    assert refused.value.code == "invalid_jwks"
    assert str(refused.value).startswith("invalid JWKS")  # The message keeps the name as people write it.


def test_a_write_that_gives_up_waiting_says_another_writer_held_the_lock(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.db"
    Store.open(f"sqlite:///{path}").close()
    monkeypatch.setattr(store_mod, "SQLITE_BUSY_TIMEOUT_MS", 200)
    store = Store.open(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError) as refused, store.write():
            pass
        assert str(refused.value).endswith(
            "database is locked (another process held the store's write lock longer than the 0.2 s this one waits "
            "for it; try again once it is done)")
    finally:
        holder.close()
        store.close()


def test_a_file_argument_that_cannot_be_read_is_unreadable_whichever_option_names_it(tmp_path: Path) -> None:
    """decide FILE already said `unreadable`; --file, --anchor and --key said `invalid_input` (stop 32's review)."""
    missing = str(tmp_path / "missing")
    env = {"HITLGATE_HOME": str(tmp_path / "home"), "HITLGATE_CONFIG": ""}
    runner = CliRunner()
    for args in (["decide", missing], ["audit", "verify", "--file", missing], ["audit", "verify", "--anchor", missing],
                 ["approve", "req-x", "--as", "carol", "--key", missing, "--digest", "sha256:" + "0" * 64]):
        result = runner.invoke(cli, ["--json", *args], env=env)
        error = json.loads(result.stdout)["error"]
        assert (error["code"], result.exit_code) == ("unreadable", 2), (args, error)


def test_a_vote_without_its_key_is_a_missing_parameter_naming_it(tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["--json", "approve", "req-1", "--as", "alice"],
                              env={"HITLGATE_HOME": str(tmp_path)})
    assert done.exit_code == 2
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "missing_parameter"
    assert error["message"].startswith("missing --key FILE (your Ed25519 private key): ")
    done = CliRunner().invoke(cli, ["--json", "reject"], env={"HITLGATE_HOME": str(tmp_path)})
    assert json.loads(done.stdout)["error"]["message"].startswith("missing REQUEST_ID, --as NAME, --key FILE")


def test_a_config_with_several_problems_lists_them_under_json(tmp_path: Path) -> None:
    cfg = tmp_path / "hitlgate.yaml"
    cfg.write_text("bakend: x\nstate: 5\n")
    done = CliRunner().invoke(cli, ["--json", "--config", str(cfg), "requests"])
    assert done.exit_code == 2
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "config_error"
    assert len(error["problems"]) == 2 and error["problems"][1].startswith("state: 5 is not of type 'string'")
    assert "'bakend' was unexpected" in error["problems"][0]


@pytest.mark.parametrize("args", [["wait", "req-1", "--timeout", "nan"], ["wait", "req-1", "--poll", "NaN"],
                                  ["policy", "check", "--coverage-threshold", "nan"]])
def test_nan_is_not_a_number_of_seconds_or_percent(tmp_path: Path, args: list[str]) -> None:
    # NaN passes every range comparison's negation; it used to be accepted ("still pending after nans").
    done = CliRunner().invoke(cli, ["--json", *args], env={"HITLGATE_HOME": str(tmp_path)})
    assert done.exit_code == 2
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "bad_parameter" and "is not a number from" in error["message"]


@pytest.mark.parametrize("out", ["newdir/", "", "sub/..", "."])
def test_an_out_path_naming_a_directory_is_refused_and_nothing_is_written(tmp_path: Path, out: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Path("newdir/") is "newdir": the key used to be written as a file named newdir.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    done = CliRunner().invoke(cli, ["--json", "keys", "generate", "--out", out])
    assert done.exit_code == 2
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "bad_parameter" and "names a directory" in error["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_writer_itself_refuses_a_directory_name(tmp_path: Path) -> None:
    from hitlgate.engine._files import write_file
    from hitlgate.errors import InputError

    for name in (f"{tmp_path}/out/", ""):
        with pytest.raises(InputError, match="give a file name, not a directory") as refused:
            write_file(name, "x", secret=False, what="report")
        assert refused.value.code == "unsafe_path"
    assert not (tmp_path / "out").exists()

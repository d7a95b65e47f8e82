"""The state file SQLite opens is the one the store created 0600 and checked.

The store creates its SQLite file with mode 0600 before SQLite opens it
(it holds live warrant tokens), and checks the file's access to say why it
cannot be written. Three ways used to split the two files apart:

* ``?uri=true``: SQLite opens the file a ``file:`` URI names, so
  ``sqlite:///file:x.db?mode=rwc&uri=true`` created an empty 0600 file
  literally named ``file:x.db`` while SQLite kept the store, tokens and all,
  in ``x.db`` with the umask's mode (0644 under the usual 022). Now such a
  URL is a configuration error naming the field, and nothing is created.
* A percent-escape: SQLAlchemy decodes ``%2D`` in the database part, so
  ``sqlite:///…/a%2Db.db`` made the store create and check ``a%2Db.db``
  while SQLite wrote ``a-b.db``, 0644. Now the store reads the path as
  SQLAlchemy does, and URLs hitlgate builds from paths (the default state
  file, a relative ``state:`` resolved against the config's directory)
  escape a ``%`` or ``?`` in them.
* Another driver (``sqlite+pysqlcipher``): the store's checks never ran.
  Now only the drivers the store runs on are accepted.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine.config import Config, sqlite_url
from hitlgate.engine.ledger.store import Store, _sqlite_path
from hitlgate.errors import ConfigError


@pytest.mark.parametrize("url", [
    "sqlite:///file:x.db?mode=rwc&uri=true",
    "sqlite:///file:x.db?uri=true",
    "sqlite:///x.db?uri=1",
    "sqlite:///file:x.db?vfs=unix-excl&uri=true",
])
def test_a_uri_filename_is_refused_and_nothing_is_created(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^state: SQLite URI filenames \(the uri parameter\) are not supported")\
            as exc:
        Store.open(url)
    assert exc.value.code == "invalid_state_url" and exc.value.exit_code == 2
    assert sorted(os.listdir(tmp_path)) == []


def test_a_plain_path_with_other_parameters_still_opens(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}?timeout=5")
    try:
        assert (tmp_path / "state.db").stat().st_mode & 0o777 == 0o600
    finally:
        store.close()


def test_the_cli_says_so_as_json_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "hitlgate.yaml"
    config.write_text(f'state: "sqlite:///{tmp_path}/file:x.db?mode=rwc&uri=true"\nkeys: {tmp_path / "keys"}\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "--json", "requests"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "invalid_state_url"
    assert "uri parameter" in error["message"]
    assert not any(p.name.endswith(".db") for p in tmp_path.iterdir())


@pytest.mark.parametrize("name", ["a%2Db.db", "sp%20ace.db", "pct%25.db"])
def test_a_percent_escape_names_the_file_sqlite_opens_and_it_is_private(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    previous = os.umask(0o022)  # The usual umask, under which SQLite itself creates files 0644.
    try:
        store = Store.open(f"sqlite:///{tmp_path / name}")
        store.close()
    finally:
        os.umask(previous)
    opened = urllib.parse.unquote(name)
    assert os.listdir(tmp_path) == [opened]
    assert (tmp_path / opened).stat().st_mode & 0o777 == 0o600


def test_an_escaped_memory_database_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Store.open("sqlite:///%3Amemory%3A").close()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("driver", ["pysqlcipher", "aiosqlite"])
def test_another_sqlite_driver_is_refused(driver: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=rf"^state: the '{driver}' driver is not supported for sqlite") as exc:
        Store.open(f"sqlite+{driver}:///state.db")
    assert exc.value.code == "invalid_state_url"
    assert os.listdir(tmp_path) == []
    Store.open("sqlite+pysqlite:///state.db").close()  # The default driver, by name, is the same store.
    assert (tmp_path / "state.db").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("text", ["/srv/a%2Db/state.db", "/srv/a?b/state.db", "/srv/a#b/state.db", "/srv/a b/s.db",
                                  "/srv/é/state.db", "relative/x%41.db"])
def test_a_url_built_from_a_path_reads_back_as_that_path(text: str) -> None:
    assert sa.engine.make_url(sqlite_url(text)).database == text
    assert _sqlite_path(sqlite_url(text)) == Path(os.path.abspath(text))


def test_a_relative_state_in_a_directory_with_a_percent_is_under_that_directory(tmp_path: Path) -> None:
    project = tmp_path / "cfg%2Dx"
    project.mkdir()
    (project / "hitlgate.yaml").write_text(f"state: sqlite:///state/h.db\nkeys: {tmp_path / 'keys'}\n")
    config = Config.from_file(project / "hitlgate.yaml")
    assert _sqlite_path(config.state_url) == project / "state" / "h.db"
    Store.open(config.state_url).close()
    assert (project / "state" / "h.db").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "cfg-x").exists()


def test_a_relative_state_keeps_its_query_and_a_home_relative_one_is_expanded(tmp_path: Path) -> None:
    (tmp_path / "hitlgate.yaml").write_text("state: sqlite:///state/h.db?timeout=5\n")
    state = Config.from_file(tmp_path / "hitlgate.yaml").state_url
    assert state == f"sqlite:///{tmp_path / 'state' / 'h.db'}?timeout=5"
    (tmp_path / "hitlgate.yaml").write_text("state: sqlite:///~/h.db\n")
    assert Config.from_file(tmp_path / "hitlgate.yaml").state_url == f"sqlite:///{Path.home() / 'h.db'}"


def test_the_default_state_file_under_a_home_with_a_percent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "h%41ome"
    monkeypatch.setenv("HITLGATE_HOME", str(home))
    assert _sqlite_path(Config().state_url) == home / "state.db"


def test_doctor_names_a_refused_state_url(tmp_path: Path) -> None:
    config = tmp_path / "hitlgate.yaml"
    config.write_text(f'state: "sqlite:///{tmp_path}/x.db?uri=true"\nkeys: {tmp_path / "keys"}\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "--json", "doctor"])
    report = json.loads(result.stdout)
    assert report["healthy"] is False and result.exit_code != 0
    assert any("uri parameter" in p for p in report["problems"])


def test_a_parent_step_after_a_symbolic_link_names_the_file_sqlite_opens(tmp_path: Path) -> None:
    # The driver makes the path absolute by text (os.path.abspath drops "link/.."); the kernel would follow
    # the link first. The store must create and check the file SQLite opens, not the other one.
    (tmp_path / "other" / "sub").mkdir(parents=True)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "link").symlink_to(tmp_path / "other" / "sub")
    previous = os.umask(0o022)
    try:
        Store.open(f"sqlite:///{tmp_path / 'cfg'}/link/../state.db").close()
    finally:
        os.umask(previous)
    assert (tmp_path / "cfg" / "state.db").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "other" / "state.db").exists()


@pytest.mark.parametrize("query", ["timeout=abc", "timeout=5&timeout=6", "timeout=-1", "timeout=nan",
                                   "check_same_thread=maybe", "isolation_level=SERIALIZABLE", "mode=ro",
                                   "detect_types=x", "plugin=anything"])
def test_a_sqlite_parameter_the_store_does_not_take_is_refused_by_name(
    query: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^state: the SQLite URL parameter") as exc:
        Store.open(f"sqlite:///state.db?{query}")
    assert exc.value.code == "invalid_state_url"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("url", ["sqlite://host/x.db", "sqlite://:pw@/x.db", "sqlite://u@/x.db"])
def test_a_sqlite_url_with_a_host_or_user_is_refused_before_anything_is_made(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^state: a SQLite URL names a file, not a host or user") as exc:
        Store.open(url)
    assert exc.value.code == "invalid_state_url" and "pw" not in str(exc.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("state", ['"sqlite:///"', '"sqlite:///:memory:"', '"sqlite://"', '"sqlite://?timeout=1"',
                                   '"sqlite+pysqlite:///"'])
def test_a_config_file_may_not_keep_its_state_in_memory(state: str, tmp_path: Path) -> None:
    (tmp_path / "hitlgate.yaml").write_text(f"state: {state}\n")
    with pytest.raises(ConfigError, match=r"state: an empty or in-memory SQLite database keeps no request") as exc:
        Config.from_file(tmp_path / "hitlgate.yaml")
    assert exc.value.code == "invalid_state_url"


def test_a_home_with_a_percent_under_a_tilde_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "u%41"
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "hitlgate.yaml").write_text("state: sqlite:///~/x.db?timeout=5\n")
    assert _sqlite_path(Config.from_file(tmp_path / "hitlgate.yaml").state_url) == home / "x.db"


def test_a_relative_state_with_the_default_driver_named_is_under_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "hitlgate.yaml").write_text("state: sqlite+pysqlite:///state/h.db\n")
    state = Config.from_file(tmp_path / "hitlgate.yaml").state_url
    assert state == f"sqlite+pysqlite:///{tmp_path / 'state' / 'h.db'}"
    assert _sqlite_path(state) == tmp_path / "state" / "h.db"


def test_the_example_pack_banner_names_the_state_file_not_its_escaped_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "h%41 ?x"
    monkeypatch.setenv("HITLGATE_HOME", str(home))
    monkeypatch.delenv("HITLGATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # No ./hitlgate.yaml: the bundled example pack, and its banner.
    result = CliRunner().invoke(cli, ["requests"])
    assert result.exit_code == 0, result.output
    assert f"WARNING: State: {home / 'state.db'}; engine keys:" in result.stderr

"""A SQLite URI filename as the state store is refused before anything is created.

The store creates its SQLite file with mode 0600 before SQLite opens it
(it holds live warrant tokens), and checks the file's access to say why it
cannot be written. Both look at the path of ``sqlite:///PATH``. With
``?uri=true`` SQLite opens instead the file a ``file:`` URI names, so
``sqlite:///file:x.db?mode=rwc&uri=true`` used to create an empty 0600 file
literally named ``file:x.db`` while SQLite kept the store, tokens and all,
in ``x.db`` with the umask's mode (0644 under the usual 022). Now the URL is
a configuration error naming the field, and nothing is created.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine.ledger.store import Store
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

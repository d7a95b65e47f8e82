"""The state store's URL in messages: never its password, and a URL that does not parse is never echoed.

A DSN with a password reaches logs, CI output and bug reports through
error messages; so the store redacts it wherever it names the store, and a
URL too malformed to redact is refused without repeating it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hitlgate.engine.ledger.store import Store, _redact
from hitlgate.errors import ConfigError, StorageError


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_connection_failure_names_the_store_without_its_password(scheme: str) -> None:
    # Both spellings of the scheme (Heroku and others hand out postgres://) are PostgreSQL through psycopg 3.
    with pytest.raises(StorageError, match=r"^cannot open the state store "
                       r"postgresql\+psycopg://hitlgate:\*\*\*@127\.0\.0\.1:1/x: connection failed") as exc:
        Store.open(f"{scheme}://hitlgate:s3cret-pw@127.0.0.1:1/x")
    assert "s3cret-pw" not in str(exc.value)


@pytest.mark.parametrize("url", ["postgresql://hitlgate:s3cret-pw@host:port/x", "postgresql://hitlgate:s3cret-pw@[::1"])
def test_unparseable_url_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^state: not a database URL \(e\.g\. sqlite:///PATH or "
                       r"postgresql\+psycopg://USER:PASSWORD@HOST:PORT/DB\)$") as exc:
        Store.open(url)
    assert exc.value.code == "invalid_state_url" and exc.value.exit_code == 2
    assert "s3cret" not in str(exc.value)


def test_redaction_of_a_url_that_does_not_parse_shows_nothing_of_it() -> None:
    assert _redact("postgresql://hitlgate:s3cret-pw@host:port/x") == "<unparseable url>"
    assert _redact("postgresql://hitlgate:s3cret-pw@db/x") == "postgresql://hitlgate:***@db/x"


def test_password_given_as_a_query_parameter_is_hidden_too() -> None:
    with pytest.raises(StorageError, match=r"^cannot open the state store postgresql\+psycopg://hitlgate@127\.0\.0\.1:1/x"
                       r"\?password=\*\*\*&sslmode=disable: connection failed") as exc:
        Store.open("postgresql://hitlgate@127.0.0.1:1/x?password=s3cret-pw&sslmode=disable")
    assert "s3cret-pw" not in str(exc.value)


@pytest.mark.parametrize("url, backend", [("mysql://u:s3cret@db/x", "mysql"), ("oracle://u@db/x", "oracle")])
def test_other_databases_are_refused_by_name(url: str, backend: str) -> None:
    with pytest.raises(ConfigError,
                       match=rf"^state: '{backend}' databases are not supported: SQLite or PostgreSQL") as exc:
        Store.open(url)
    assert exc.value.code == "invalid_state_url" and "s3cret" not in str(exc.value)


def test_a_long_database_name_is_refused_showing_only_its_first_40_characters() -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(f"state: '{'a' * 40}' databases are not supported")):
        Store.open("a" * 60 + "://u@db/x")


def test_a_postgresql_url_with_three_slashes_is_never_taken_for_a_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libpq's "no host" form (postgresql:///DB, a local socket) holds "///" as a SQLite URL does: only a
    # sqlite URL's path is checked and created as a file, so nothing named after the database appears here.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match=r"^cannot open the state store postgresql\+psycopg:///hitlgate"):
        Store.open("postgresql:///hitlgate?host=/nonexistent-socket-dir")
    assert list(tmp_path.iterdir()) == []

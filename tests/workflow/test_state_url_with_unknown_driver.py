"""Fault: the configured state URL names a database driver the store does not run on.

``postgresql+nosuch://`` passes the backend check (it is PostgreSQL), and
SQLAlchemy then refused it with an error that is not a database error.
Before that it was an internal error with a traceback, then a storage error
(exit 1). The driver is part of the configuration: now it is refused as an
invalid state URL (exit 2) naming the driver and the ones that work, before
SQLAlchemy is asked to load it.
"""

from __future__ import annotations

import re

import pytest

from hitlgate.engine.ledger.store import Store
from hitlgate.errors import ConfigError


@pytest.mark.parametrize(("url", "works"), [("postgresql+nosuch://u@127.0.0.1/db", "postgresql+psycopg"),
                                            ("sqlite+nosuch:///state.db", "sqlite+pysqlite"),
                                            ("postgresql+psycopg2://u@127.0.0.1/db", "postgresql+psycopg")])
def test_unknown_driver_is_a_config_error_naming_it(url: str, works: str) -> None:
    driver = url.split("+", 1)[1].split(":", 1)[0]
    expected = f"state: the '{driver}' driver is not supported for {works.split('+')[0]}; use {works}://"
    with pytest.raises(ConfigError, match="^" + re.escape(expected)) as exc:
        Store.open(url)
    assert exc.value.code == "invalid_state_url" and exc.value.exit_code == 2

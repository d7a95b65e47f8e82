"""Fault: the configured state URL names a database driver SQLAlchemy has no dialect for.

``postgresql+nosuch://`` passes the backend check (it is PostgreSQL), and
SQLAlchemy then refuses it with an error that is not a database error (it
carries no driver exception). It is reported as the state store's error,
with SQLAlchemy's reason, not as an internal error with a traceback.
"""

from __future__ import annotations

import re

import pytest

from hitlgate.engine.ledger.store import Store
from hitlgate.errors import StorageError


@pytest.mark.parametrize("url", ["postgresql+nosuch://u@127.0.0.1/db", "sqlite+nosuch:///state.db"])
def test_unknown_driver_is_a_storage_error_naming_it(url: str) -> None:
    backend = url.split("+", 1)[0]
    with pytest.raises(StorageError, match=rf"^cannot open the state store {re.escape(url)}: "
                                           rf"Can't load plugin: sqlalchemy\.dialects:{backend}\.nosuch$"):
        Store.open(url)

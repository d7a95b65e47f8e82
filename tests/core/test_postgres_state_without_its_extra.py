"""A PostgreSQL ``state:`` URL without the postgres extra says what to install.

Before the fix SQLAlchemy's import of the missing driver surfaced as
``internal: unexpected ModuleNotFoundError: No module named 'psycopg'``,
which reads as a bug in hitlgate. A real process with psycopg made
unimportable (as on a machine where only ``pip install hitlgate`` ran).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hitlgate.engine.ledger.store import Store
from hitlgate.errors import StorageError
from tests.cli_project import make_project

# sys.modules[name] = None makes both `import psycopg` and find_spec("psycopg") see no such package.
_MAIN = "import sys; sys.modules['psycopg'] = None\nfrom hitlgate.cli import main; main()"


def test_postgresql_state_without_psycopg_names_the_extra(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    project.config.write_text(project.config.read_text().replace(
        "state: sqlite:///state/hitlgate.db", "state: postgresql+psycopg://hitlgate@127.0.0.1:1/hitlgate"))
    run = subprocess.run([sys.executable, "-c", _MAIN, "--config", str(project.config), "--json", "requests"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert json.loads(run.stdout)["error"] == {
        "code": "missing_extra",
        "message": "state: PostgreSQL needs the postgres extra (psycopg is not installed): pip install "
                   "'hitlgate[postgres]' (from a checkout: pip install -e '.[postgres]')",
        "exit_code": 1,
    }
    assert "Traceback" not in run.stderr


def test_the_store_names_the_extra_in_process_and_sqlite_needs_no_psycopg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same check, in the library (an SDK caller's Store.open), whole; and only a PostgreSQL URL asks for it.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    message = ("state: PostgreSQL needs the postgres extra (psycopg is not installed): pip install "
               "'hitlgate[postgres]' (from a checkout: pip install -e '.[postgres]')")
    with pytest.raises(StorageError, match="^" + re.escape(message) + "$") as info:
        Store.open("postgresql://hitlgate@127.0.0.1:1/hitlgate")
    assert info.value.code == "missing_extra"
    Store.open(f"sqlite:///{tmp_path / 'state.db'}").close()

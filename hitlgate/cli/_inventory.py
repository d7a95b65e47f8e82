"""``hitlgate inventory``: the inventory kept in the state store's database.

A thin shell over :mod:`hitlgate.engine.decide.inventory_db`: ``import`` replaces
the database's inventory with inventory files (YAML or JSON Lines, validated
as the files source validates them, all or nothing), ``put`` and ``delete``
change one record, ``show`` prints one, ``status`` reports the configured
source, the counts, the version and the revision. Deciders configured with
``inventory: {source: database}`` see a committed change within a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hitlgate.cli._common import (
    UTF8_TEXT,
    CliState,
    check_text_arg,
    current_limits,
    echo_json,
    examples,
    json_option,
    pass_state,
    read_json_arg,
)
from hitlgate.engine._safeparse import parse_json

if TYPE_CHECKING:
    # SQLAlchemy is imported only when an inventory command runs.
    from hitlgate.engine.decide.inventory_db import ChangeResult, InventoryDB

#: The sections a record may be put in (kept here so --help does not import the store).
SECTIONS = ("teams", "workloads", "partners", "identities", "approvers", "protected")


@contextmanager
def _open(state: CliState) -> Iterator[InventoryDB]:
    from hitlgate.engine.decide.inventory_db import InventoryDB

    db = InventoryDB.open(state.config.state_url)
    try:
        yield db
    finally:
        db.close()


def _report(state: CliState, what: str, result: ChangeResult) -> None:
    if state.json:
        echo_json(result.to_dict())
        return
    counts = ", ".join(
        f"{n} {word}" for n, word in (
            (result.added, "added"), (result.changed, "changed"), (result.deleted, "deleted"),
            (result.unchanged, "unchanged"),
        ) if n
    )
    click.echo(f"{what}: {counts or 'nothing to do'}; inventory version {result.version}, revision {result.revision}")


@click.group(epilog=examples("hitlgate inventory import cmdb-export.jsonl", "hitlgate inventory status"))
def inventory() -> None:
    """The inventory in the state store's database (config inventory.source: database)."""


@inventory.command(
    "import",
    epilog=examples("hitlgate inventory import policies/data", "hitlgate inventory import teams.yaml cmdb.jsonl"),
)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
@pass_state
def import_(state: CliState, files: tuple[Path, ...]) -> None:
    """Replace the database's inventory with FILES (YAML, *.jsonl, or directories of them).

    The files are validated exactly as the files source validates them
    (schema, ids defined twice, references, one key per approver) and
    imported in one transaction: if anything is wrong nothing changes.
    Records not in FILES are deleted; unchanged records are not rewritten.

    \b
    Exit codes:
      0  imported
      1  the state store failed
      2  a file is missing, unreadable or invalid (nothing was changed)
    """
    with _open(state) as db:
        result = db.import_files(list(files), limits=current_limits())
    _report(state, "imported", result)


def _record_arg(state: CliState, section: str, json_text: str | None, file: str | None) -> Any:
    if json_text is not None and file is not None:
        raise click.UsageError("give the record with --record or --file, not both")
    if json_text is not None:
        text = check_text_arg(json_text, "inventory record")
        return parse_json(text, what="inventory record", label="--record", max_depth=current_limits().max_depth)
    if file is not None:
        return read_json_arg(file, "inventory record")
    if section == "protected":
        return True
    raise click.UsageError("give the record with --record TEXT or --file FILE")


@inventory.command(
    "put",
    epilog=examples(
        "hitlgate inventory put identities svc-ci-runner --file svc-ci-runner.json",
        "hitlgate inventory put teams team-data --record '{\"name\": \"Data\"}'",
        "hitlgate inventory put protected break-glass-admin",
    ),
)
@click.argument("section", type=click.Choice(SECTIONS))
@click.argument("record_id", metavar="ID", type=UTF8_TEXT)
@click.option("--record", "json_text", metavar="TEXT", help="The record as JSON text.")
@click.option("--file", "file", metavar="FILE", help="The record as a JSON file ('-' for stdin).")
@json_option
@pass_state
def put(state: CliState, section: str, record_id: str, json_text: str | None, file: str | None) -> None:
    """Write one record (insert or replace), validated as in an inventory file.

    The record is checked against the section's schema and, by key, its
    references (owner team, used_by workloads, partner, approver teams, one
    key per approver). A protected id needs no record.

    \b
    Exit codes:
      0  written (or already identical)
      1  the state store failed
      2  the record is invalid or refers to a record that does not exist
    """
    record = _record_arg(state, section, json_text, file)
    with _open(state) as db:
        result = db.put(section, record_id, record)
    _report(state, f"{section}.{record_id}", result)


@inventory.command("delete", epilog=examples("hitlgate inventory delete identities old-deploy-key"))
@click.argument("section", type=click.Choice(SECTIONS))
@click.argument("record_id", metavar="ID", type=UTF8_TEXT)
@json_option
@pass_state
def delete(state: CliState, section: str, record_id: str) -> None:
    """Delete one record; refused while another record still refers to it.

    \b
    Exit codes:
      0  deleted
      1  the state store failed
      2  no such record (not_found), or records still refer to it (dangling_reference, each field named)
    """
    with _open(state) as db:
        result = db.delete(section, record_id)
    _report(state, f"{section}.{record_id}", result)


@inventory.command("show", epilog=examples("hitlgate inventory show identities svc-ci-runner"))
@click.argument("section", type=click.Choice(SECTIONS))
@click.argument("record_id", metavar="ID", type=UTF8_TEXT)
@json_option
@pass_state
def show(state: CliState, section: str, record_id: str) -> None:
    """Print one record of the database's inventory and the version that last changed it.

    \b
    Exit codes:
      0  shown
      1  the state store failed
      2  no such record (not_found)
    """
    import json

    with _open(state) as db:
        record, version = db.get(section, record_id)
    if state.json:
        echo_json({"section": section, "id": record_id, "version": version, "record": record})
    else:
        click.echo(f"{section}.{record_id} (version {version}):")
        click.echo(json.dumps(record, indent=2, sort_keys=True))


@inventory.command("status", epilog=examples("hitlgate inventory status", "hitlgate --json inventory status"))
@json_option
@pass_state
def status(state: CliState) -> None:
    """Report the configured inventory source and the database's counts, version and revision.

    \b
    Exit codes:
      0  reported
      1  the state store failed
    """
    source = state.config.inventory_source
    with _open(state) as db:
        st = db.status()
    if state.json:
        echo_json({"source": source, **st.to_dict()})
        return
    click.echo(f"inventory source: {source}" + ("" if source == "database" else
               " (deciders read the data files; set inventory.source: database to use these records)"))
    click.echo(f"database inventory: version {st.version}, revision {st.revision}")
    click.echo(f"  content revision (what deciders record): {st.content_revision}")
    click.echo("  " + ", ".join(f"{n} {section}" for section, n in st.counts.items()))


def register(cli: click.Group) -> None:
    """Add ``hitlgate inventory`` to the root group."""
    cli.add_command(inventory)

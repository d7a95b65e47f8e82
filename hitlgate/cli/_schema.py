"""``hitlgate schema NAME``: print a bundled JSON Schema.

pip users have no ``schemas/`` folder to open; the schemas ship inside the
package, and this prints the one the engine validates against.
"""

from __future__ import annotations

import click

from hitlgate.cli._common import echo_json, examples, json_option
from hitlgate.engine.decide.schemas import SCHEMAS


@click.command("schema", epilog=examples("hitlgate schema proposal", "hitlgate schema decision > decision.schema.json"))
@click.argument("name", type=click.Choice(SCHEMAS))
@json_option
def schema(name: str) -> None:
    """Print the JSON Schema NAME: proposal, inventory, decision or config.

    The output is always JSON; --json is accepted for uniformity.
    Exit code 0, or 2 for an unknown NAME.
    """
    from hitlgate.engine.decide.schemas import validator

    echo_json(validator(name).schema)


def register(cli: click.Group) -> None:
    """Add ``schema`` to the root group."""
    cli.add_command(schema)

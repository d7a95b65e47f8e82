"""``hitlgate serve`` (the HTTP API) and ``hitlgate apikey`` (its bearer keys)."""

from __future__ import annotations

import json
import os

import click

from hitlgate.cli._common import CliState, echo_json, examples, json_option, pass_state
from hitlgate.cli._workflow import open_engine
from hitlgate.engine.apikeys import ROLES, ApiKeys
from hitlgate.engine.config import Config
from hitlgate.errors import ConfigError


@click.command(epilog=examples("hitlgate serve --port 8080", "hitlgate --config prod/hitlgate.yaml serve --workers 4",
                               "hitlgate serve --openapi > schemas/openapi.json"))
@click.option("--host", help="Address to listen on (server.host; default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (server.port; default 8080; 0 picks a free one).")
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes (server.workers; default 1).")
@click.option("--openapi", "print_openapi", is_flag=True, help="Print the OpenAPI document and exit.")
@json_option
@pass_state
def serve(state: CliState, host: str | None, port: int | None, workers: int | None, print_openapi: bool) -> None:
    """Serve the HTTP API (FastAPI on uvicorn) on the configured store, keys and policy.

    Run several replicas on one PostgreSQL for scale; nothing is kept in
    process memory that another replica needs. Every /v1 endpoint needs an
    API key (hitlgate apikey create). Runs until stopped (SIGINT/SIGTERM).

    \b
    Exit codes:
      0  stopped (SIGINT/SIGTERM), or --openapi printed
      1  the store, keys or policy could not be opened
      2  bad configuration or option
    """
    import uvicorn

    from hitlgate.engine.workflow import Engine
    from hitlgate.service.app import create_app

    config = state.config
    settings = config.server
    if print_openapi:
        click.echo(openapi_document(config))
        return
    host = host if host is not None else settings.host
    port = port if port is not None else settings.port
    workers = workers if workers is not None else settings.workers
    if workers > 1:
        # Each worker process builds its own app from the same configuration file.
        if config.source is None:
            raise ConfigError("--workers above 1 needs a configuration file (--config or $HITLGATE_CONFIG)")
        os.environ["HITLGATE_CONFIG"] = str(config.source)
        uvicorn.run("hitlgate.service.app:app_from_environment", factory=True, host=host, port=port,
                    workers=workers, log_level="info" if state.verbose else "warning", access_log=state.verbose)
        return
    engine = Engine.from_config(config)
    try:
        uvicorn.run(create_app(engine), host=host, port=port, log_level="info" if state.verbose else "warning",
                    access_log=state.verbose)
    finally:
        engine.close()


def openapi_document(config: Config) -> str:
    """The service's OpenAPI document as committed in ``schemas/openapi.json`` (no store or keys are touched).

    The document depends on the code only, so it is built on a throwaway
    store and key directory instead of the configured ones.
    """
    import dataclasses
    import tempfile
    from pathlib import Path

    from hitlgate.engine.workflow import Engine
    from hitlgate.service.app import create_app

    with tempfile.TemporaryDirectory(prefix="hitlgate-openapi-") as tmp:
        scratch = dataclasses.replace(config, state_url=f"sqlite:///{Path(tmp) / 'state.db'}", key_dir=Path(tmp) / "k",
                                      audit_anchor=None)
        with Engine(scratch) as engine:
            return json.dumps(create_app(engine).openapi(), indent=2, sort_keys=True) + "\n"


@click.group(epilog=examples("hitlgate apikey create soc-agent-7 --role agent", "hitlgate apikey list",
                             "hitlgate apikey revoke soc-agent-7"))
def apikey() -> None:
    """API keys of the HTTP service: only a hash is stored; create and revoke are audit events."""


@apikey.command("create", epilog=examples("hitlgate apikey create soc-agent-7 --role agent"))
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="agent: propose and read its own; executor: verify, consume, report; viewer: read; admin: all.")
@json_option
@pass_state
def apikey_create(state: CliState, name: str, role: str) -> None:
    """Create a key for the principal NAME; the token is printed once and never stored.

    Exit code 0, or 2 for a NAME that is not a principal name.
    """
    with open_engine(state) as engine:
        key, token = ApiKeys(engine).create(name, role)
    if state.json:
        echo_json({**key.to_dict(), "token": token})
    else:
        click.echo(token)
        click.echo(f"created API key {key.id} for {key.name} ({key.role}); the token above is shown only now",
                   err=True)


@apikey.command("list", epilog=examples("hitlgate apikey list", "hitlgate --json apikey list"))
@json_option
@pass_state
def apikey_list(state: CliState) -> None:
    """List API keys (ids, names, roles, revocation; never secrets). Exit code 0."""
    with open_engine(state) as engine:
        keys = ApiKeys(engine).list()
    if state.json:
        echo_json([k.to_dict() for k in keys])
        return
    for k in keys:
        d = k.to_dict()
        click.echo(f"{k.id}  {k.name:<24} {k.role:<9} created {d['created_at']}"
                   + (f"  REVOKED {d['revoked_at']}" if k.revoked_at else ""))


@apikey.command("revoke", epilog=examples("hitlgate apikey revoke 3f2a9c0d1b4e5f60",
                                          "hitlgate apikey revoke soc-agent-7"))
@click.argument("key")
@json_option
@pass_state
def apikey_revoke(state: CliState, key: str) -> None:
    """Revoke the key with id KEY, or every active key of the principal KEY.

    Exit code 0, or 2 when no active key matches.
    """
    with open_engine(state) as engine:
        revoked = ApiKeys(engine).revoke(key)
    if state.json:
        echo_json([k.to_dict() for k in revoked])
    else:
        for k in revoked:
            click.echo(f"revoked API key {k.id} of {k.name}")


def register(cli: click.Group) -> None:
    """Add ``serve`` and ``apikey`` to the root group."""
    cli.add_command(serve)
    cli.add_command(apikey)

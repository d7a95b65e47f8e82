"""``hitlgate serve`` (the HTTP API) and ``hitlgate apikey`` (its bearer keys)."""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from typing import Any

import click

from hitlgate.cli._common import UTF8_TEXT, CliState, echo_json, examples, json_option, pass_state
from hitlgate.cli._workflow import open_engine
from hitlgate.engine.config import Config, sqlite_url
from hitlgate.engine.keys.apikeys import ROLES, ApiKeys
from hitlgate.errors import EXIT_ERROR, ConfigError, HitlgateError


class ServeError(HitlgateError):
    """``hitlgate serve`` could not start: the server extra is missing, or the address cannot be listened on."""

    exit_code = EXIT_ERROR
    code = "cannot_listen"


#: How to install what ``hitlgate serve`` needs.
INSTALL_HINT = "pip install 'hitlgate[server]' (from a checkout: pip install -e '.[server]')"


@click.command(epilog=examples("hitlgate serve --port 8080", "hitlgate --config prod/hitlgate.yaml serve --workers 4",
                               "hitlgate serve --openapi > schemas/openapi.json"))
@click.option("--host", type=UTF8_TEXT, help="Address to listen on (server.host; default 127.0.0.1).")
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
    Also serves the approvers' console under /ui (passkeys need
    server.public_url) and, on the one replica holding the tick lease, runs
    the periodic tick: expiry, reminders (reminders:) and notifications
    (notifications:). The configuration is read at start: restart after
    changing hitlgate.yaml.

    At start it prints one line, "listening on http://HOST:PORT (N
    workers)", followed by "; approvers' console: PUBLIC_URL/ui" when
    server.public_url is set (under --json: {"listening", "host", "port", "workers"} on
    stdout), after the port is bound: with --port 0 it names the port picked.

    \b
    Exit codes:
      0  --openapi printed (SIGINT/SIGTERM stop the server gracefully, and
         the process then ends by that signal, as uvicorn's do)
      1  cannot listen on HOST:PORT (code address_in_use, or cannot_listen),
         the server extra is not installed (code missing_extra), the store,
         keys or policy could not be opened, or the app did not start
         (code startup_failed)
      2  bad configuration or option
    """
    try:
        import uvicorn

        from hitlgate.engine.approve.workflow import Engine
        from hitlgate.engine.decide.policy import set_file_check_interval
        from hitlgate.service.app import create_app
        from hitlgate.service.collector import settle_for_serving
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "hitlgate":
            raise
        raise ServeError(f"hitlgate serve needs the server extra ({exc.name} is not installed): {INSTALL_HINT}",
                         code="missing_extra") from None

    config = state.config
    settings = config.server
    if print_openapi:
        click.echo(openapi_document(config))
        return
    host = host if host is not None else settings.host
    port = port if port is not None else settings.port
    workers = workers if workers is not None else settings.workers
    if workers > 1 and config.source is None:
        raise ConfigError("--workers above 1 needs a configuration file (--config or $HITLGATE_CONFIG)")
    log_level = "info" if state.verbose else "warning"
    if workers > 1:
        # Each worker process builds its own app from the same configuration file.
        os.environ["HITLGATE_CONFIG"] = str(config.source)
        sock = listen(host, port)
        _announce(state, host, sock, workers, config.server.public_url)
        from uvicorn.supervisors import Multiprocess

        multi = uvicorn.Config("hitlgate.service.app:app_from_environment", factory=True, workers=workers,
                               log_level=log_level, access_log=state.verbose)
        with sock:
            Multiprocess(multi, sockets=[sock]).run()
        return
    set_file_check_interval(settings.file_check_seconds)
    engine = Engine.from_config(config)
    try:
        # Bound before the app is built and uvicorn starts, so a busy port is our own clean error.
        sock = listen(host, port)
        with sock:
            app = create_app(engine)
            settle_for_serving()
            server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=state.verbose))
            _announce(state, host, sock, workers, config.server.public_url)
            server.run(sockets=[sock])
        if not server.started:
            raise ServeError("the server did not start (see the log above)", code="startup_failed")
    finally:
        engine.close()


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (uvicorn listens on it); :class:`ServeError` when that fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a restart need not wait for the old connections' TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"cannot listen on {host}:{port}: address in use (another server holds the port; "
                             "choose another with --port)", code="address_in_use") from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _announce(state: CliState, host: str, sock: socket.socket, workers: int, public_url: str | None) -> None:
    port = int(sock.getsockname()[1])
    shown = f"[{host}]" if ":" in host else host
    doc: dict[str, Any] = {"listening": f"http://{shown}:{port}", "host": host, "port": port, "workers": workers}
    if state.json:
        click.echo(json.dumps(doc))  # One line, so a supervisor can read it before the server's log.
    else:
        line = f"listening on {doc['listening']} ({workers} worker{'s' if workers != 1 else ''})"
        if public_url:
            # Passkeys work only at public_url (a host name), which may differ from the bound address.
            line += f"; approvers' console: {public_url.rstrip('/')}/ui"
        click.echo(line, err=True)
    sys.stdout.flush()


def openapi_document(config: Config) -> str:
    """The service's OpenAPI document as committed in ``schemas/openapi.json`` (no store or keys are touched).

    The document depends on the code only, so it is built on a throwaway
    store and key directory instead of the configured ones.
    """
    import dataclasses
    import tempfile
    from pathlib import Path

    from hitlgate.engine.approve.workflow import Engine
    from hitlgate.service.app import create_app

    with tempfile.TemporaryDirectory(prefix="hitlgate-openapi-") as tmp:
        scratch = dataclasses.replace(config, state_url=sqlite_url(Path(tmp) / "state.db"), key_dir=Path(tmp) / "k",
                                      audit_anchor=None)
        with Engine(scratch) as engine:
            return json.dumps(create_app(engine).openapi(), indent=2, sort_keys=True) + "\n"


@click.group(epilog=examples("hitlgate apikey create soc-agent-7 --role agent", "hitlgate apikey list",
                             "hitlgate apikey revoke soc-agent-7"))
def apikey() -> None:
    """API keys of the HTTP service: only a hash is stored; create and revoke are audit events."""


@apikey.command("create", epilog=examples("hitlgate apikey create soc-agent-7 --role agent"))
@click.argument("name", type=UTF8_TEXT)
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="agent: propose and read its own; executor: verify, consume, report; viewer: read all and "
                   "relay approvers' signed votes and revocations; admin: all but consuming and outcomes.")
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
@click.argument("key", type=UTF8_TEXT)
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

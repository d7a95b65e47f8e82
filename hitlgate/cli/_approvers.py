"""``hitlgate approvers``: passkey enrolment links, the passkey registry, and the approvers' public keys."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import click

from hitlgate.cli._common import UTF8_TEXT, CliState, echo_json, examples, json_option, pass_state
from hitlgate.cli._workflow import open_engine
from hitlgate.engine._time import format_time


@click.group(epilog=examples("hitlgate approvers enroll alice", "hitlgate approvers passkeys",
                             "hitlgate approvers keys > approver-keys.json"))
def approvers() -> None:
    """Approvers' passkeys (WebAuthn) and public keys."""


@approvers.command("enroll", epilog=examples("hitlgate approvers enroll alice --ttl 30"))
@click.argument("name", type=UTF8_TEXT)
@click.option("--ttl", "ttl_minutes", type=click.IntRange(1, 7 * 24 * 60), default=60, show_default=True,
              help="Minutes until the link expires.")
@json_option
@pass_state
def approvers_enroll(state: CliState, name: str, ttl_minutes: int) -> None:
    """Create a one-time link that enrols a passkey for the approver NAME (printed once, never stored).

    NAME must be an approver of the trusted inventory. Send the link to them
    over a channel that reaches only them: whoever opens it first enrols a
    passkey that approves as NAME. Needs server.public_url. Creating the link
    is an audit event, and so is its use. Exit code 0; 2 when server.public_url
    is unset or the --ttl is out of range; 3 when NAME is not a registered approver.
    """
    with open_engine(state) as engine:
        rp = engine.passkeys.relying_party  # Fails before a link is made when public_url is unset.
        enrolment, token = engine.passkeys.create_enrolment(name, ttl=timedelta(minutes=ttl_minutes))
    url = f"{rp.origin}/ui/enroll/{quote(token, safe='')}"
    if state.json:
        echo_json({"approver": enrolment.approver, "url": url, "expires_at": format_time(enrolment.expires_at)})
    else:
        click.echo(url)
        click.echo(f"enrolment link for {enrolment.approver}; it works once and expires at "
                   f"{format_time(enrolment.expires_at)} (shown only now)", err=True)


@approvers.command("passkeys", epilog=examples("hitlgate approvers passkeys", "hitlgate approvers passkeys alice"))
@click.argument("name", type=UTF8_TEXT, required=False)
@json_option
@pass_state
def approvers_passkeys(state: CliState, name: str | None) -> None:
    """List enrolled passkeys (of NAME, or everyone's), active and revoked. Exit code 0."""
    with open_engine(state) as engine:
        records = engine.passkeys.list(name)
    if state.json:
        echo_json([r.to_dict() for r in records])
        return
    if not records:
        # An empty listing would look like a command that did nothing: say so, and how to enrol one.
        whose = f" for {name}" if name else ""
        click.echo(f"no passkeys enrolled{whose}; `hitlgate approvers enroll NAME` creates an enrolment link", err=True)
    for r in records:
        d = r.to_dict()
        state_ = f"REVOKED {d['revoked_at']}" if r.revoked_at else f"last used {d['last_used_at'] or 'never'}"
        click.echo(f"{r.key.approver:<16} {r.key.credential_id[:24]:<24} enrolled {d['created_at']}  {state_}")


@approvers.command("revoke", epilog=examples("hitlgate approvers revoke alice", "hitlgate approvers revoke CRED_ID"))
@click.argument("which", type=UTF8_TEXT)
@json_option
@pass_state
def approvers_revoke(state: CliState, which: str) -> None:
    """Revoke the passkey with credential id WHICH, or every passkey of the approver WHICH.

    Its approvals on requests whose warrant is not used yet stop counting.
    An audit event per passkey. Exit code 0, or 2 when no active passkey matches.
    """
    with open_engine(state) as engine:
        keys = engine.passkeys.revoke(which)
    if state.json:
        echo_json([k.to_dict() for k in keys])
    else:
        for k in keys:
            click.echo(f"revoked passkey {k.credential_id[:24]} of {k.approver}")


@approvers.command("keys", epilog=examples("hitlgate approvers keys > approver-keys.json",
                                           "hitlgate audit verify --file audit.jsonl --approver-keys keys.json"))
@json_option
@pass_state
def approvers_keys(state: CliState) -> None:
    """Print every approver's public keys (Ed25519 and enrolled passkeys) as JSON, for offline verification.

    Keep a copy where the database's writers cannot change it: `audit
    verify --file EXPORT --approver-keys FILE` re-verifies every signed
    vote in an export with only these keys. Revoked passkeys are included:
    they signed votes before they were revoked. The output is JSON with or
    without --json. Exit code 0.
    """
    from hitlgate.engine.decide.inventory import encode_public_key, public_raw_bytes

    with open_engine(state) as engine:
        registry = engine.approvers.all()
        # Only rows the engine bound: a passkey written into the database must not become a trusted key.
        records = engine.passkeys.list(verify=True)
    echo_json({
        "approvers": {name: encode_public_key(public_raw_bytes(a.public_key)) for name, a in sorted(registry.items())},
        "passkeys": [r.key.to_dict() for r in records],
    })


def register(cli: click.Group) -> None:
    """Add ``approvers`` to the root group."""
    cli.add_command(approvers)

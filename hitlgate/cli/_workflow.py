"""CLI commands of the approval workflow: a thin shell over :mod:`hitlgate.engine.workflow`.

``propose``, ``requests``, ``show``, ``approve``, ``reject``, ``wait``,
``warrant``, ``verify``, ``revoke``, ``expire``, ``keys …`` and ``audit …``.
Every command prints for people by default and JSON with ``--json``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from hitlgate.cli._common import CliState, echo_json, pass_state, read_json_arg
from hitlgate.engine import lifecycle
from hitlgate.engine._time import format_time, utcnow
from hitlgate.engine.anchor import load_external_anchor
from hitlgate.engine.approvals import SignedStatement, Statement, sign
from hitlgate.engine.audit import read_export, verify_chain
from hitlgate.engine.keys import EngineKeyring, generate_approver_key, load_approver_key
from hitlgate.engine.proposal import Proposal
from hitlgate.errors import EXIT_OK, EXIT_PENDING, EXIT_REFUSED, HitlgateError, InputError

if TYPE_CHECKING:
    # The store and workflow pull in SQLAlchemy; import them only when a
    # workflow command runs, so `hitlgate decide` starts fast.
    from hitlgate.engine.store import Request
    from hitlgate.engine.workflow import Engine

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes of ``hitlgate wait``.
WAIT_GRANTED, WAIT_CLOSED, WAIT_TIMEOUT = EXIT_OK, EXIT_REFUSED, EXIT_PENDING


class WaitTimeoutError(HitlgateError):
    """``hitlgate wait`` gave up before the request was decided."""

    exit_code = WAIT_TIMEOUT


class RequestClosedError(HitlgateError):
    """``hitlgate wait`` saw the request end without a grant."""

    exit_code = WAIT_CLOSED


def json_option(f: F) -> F:
    """The ``--json`` flag every workflow command takes."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


@contextmanager
def open_engine(state: CliState) -> Iterator[Engine]:
    """An engine on the configured store, keys and policy; closed afterwards."""
    from hitlgate.engine.workflow import Engine

    engine = Engine.from_config(state.config)
    try:
        yield engine
    finally:
        engine.close()


def format_request(engine: Engine, req: Request, *, verbose: bool = False) -> str:
    """Human-readable rendering of a request."""
    action = req.action
    lines = [
        f"{req.id}  {req.status.upper()}  {req.tier}",
        f"  action:    {action['type']} on {action['target']}"
        + (f" {json.dumps(action['parameters'], sort_keys=True)}" if action["parameters"] else ""),
        f"  digest:    {req.action_digest}",
        f"  requester: {req.requester}",
        f"  created:   {format_time(req.created_at)}   expires: {format_time(req.expires_at)}",
    ]
    if req.decision.needs_approval:
        lines.append(f"  quorum:    {engine.progress(req.id).describe()}")
    if req.status_reason:
        lines.append(f"  status:    {req.status_reason}")
    for v in req.votes:
        lines.append(f"  vote:      {v.approver} {v.verdict}d at {format_time(v.signed_at)}")
    if verbose:
        lines.append("  reasons:")
        lines.extend(f"    - {r}" for r in req.decision.reasons)
        lines.append(f"  policy:    {req.policy_revision}")
    return "\n".join(lines)


def _request_json(engine: Engine, req: Request) -> dict[str, Any]:
    out = req.to_dict()
    if req.decision.needs_approval:
        out["quorum_progress"] = engine.progress(req.id).to_dict()
    return out


@contextmanager
def _file_errors(path: str | Path, doing: str) -> Iterator[None]:
    """Report an OS error on ``path`` as an :class:`InputError` the root prints, not as a traceback."""
    try:
        yield
    except OSError as exc:
        raise InputError(f"cannot {doing} {path}: {exc.strerror or exc}") from exc


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, also when the file existed; never through a symlink.

    A warrant is a bearer token until it is consumed: an existing file's
    looser mode must not carry over to it.
    """
    with _file_errors(path, "write"):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fd, 0o600)
            fh.write(text)


_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _read_text_arg(value: str, what: str) -> str:
    """A compact JWS given literally, ``-`` for stdin, or a file path (``@FILE`` also works)."""
    if value == "-":
        return sys.stdin.read().strip()
    if _COMPACT_JWS.fullmatch(value.strip()):
        return value.strip()
    path = Path(value[1:] if value.startswith("@") else value)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"cannot read {what} from {path}: {exc.strerror}") from exc
    raise InputError(f"{what}: not a compact JWS and not a readable file")


# -- propose / requests / show -------------------------------------------


@click.command()
@click.argument("proposal_file", metavar="PROPOSAL.json")
@json_option
@pass_state
def propose(state: CliState, proposal_file: str, as_json: bool) -> None:
    """Decide a proposal and store it as a request (``-`` reads stdin)."""
    proposal = Proposal.from_dict(read_json_arg(proposal_file, "proposal"))
    with open_engine(state) as engine:
        req = engine.propose(proposal)
        if as_json:
            echo_json(_request_json(engine, req))
            return
        click.echo(format_request(engine, req, verbose=True))
        if req.status == lifecycle.GRANTED:
            click.echo(f"\nauto-allowed: fetch the warrant with `hitlgate warrant {req.id}`")
        elif req.status == lifecycle.PENDING:
            click.echo(f"\nwaiting for approval: `hitlgate approve {req.id} --as NAME --key FILE`")


@click.command()
@click.option("--status", type=click.Choice(lifecycle.STATES), help="Only requests in this state.")
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
@json_option
@pass_state
def requests(state: CliState, status: str | None, limit: int, as_json: bool) -> None:
    """List requests, newest first."""
    with open_engine(state) as engine:
        reqs = engine.list(status, limit=limit)
        if as_json:
            echo_json([r.to_dict() for r in reqs])
            return
        if not reqs:
            click.echo("no requests" + (f" in state {status}" if status else ""))
        for r in reqs:
            a = r.action
            click.echo(f"{r.id}  {r.status:<17} {r.tier:<15} {a['type']} on {a['target']}")


@click.command()
@click.argument("request_id")
@click.option("--events", is_flag=True, help="Also list the request's audit events.")
@json_option
@pass_state
def show(state: CliState, request_id: str, events: bool, as_json: bool) -> None:
    """Show one request: decision, quorum progress, votes."""
    with open_engine(state) as engine:
        req = engine.get(request_id)
        evs = engine.audit_events(request_id) if events else []
        if as_json:
            out = _request_json(engine, req)
            if events:
                out["events"] = [e.to_dict() for e in evs]
            echo_json(out)
            return
        click.echo(format_request(engine, req, verbose=True))
        for e in evs:
            click.echo(f"  #{e.seq:<5} {format_time(e.at)}  {e.kind}")


# -- votes -------------------------------------------------------------------


def _vote_command(verdict: str) -> click.Command:
    noun = "approval" if verdict == "approve" else "rejection"
    article = "an" if verdict == "approve" else "a"

    @click.command(name=verdict, help=f"Sign and submit {article} {noun}, or submit one signed elsewhere.")
    @click.argument("request_id", required=False)
    @click.option("--as", "name", help="Your approver name in the inventory.")
    @click.option("--key", "key_file", type=click.Path(dir_okay=False), help="Your Ed25519 private key (PEM).")
    @click.option("--signed", "signed_file", help=f"A signed {noun} statement (JSON file, or - for stdin).")
    @click.option("--digest", help="Action digest to sign (for offline signing with --out; default: the stored one).")
    @click.option("--out", type=click.Path(dir_okay=False), help="Write the signed statement here; do not submit.")
    @json_option
    @pass_state
    def command(
        state: CliState,
        request_id: str | None,
        name: str | None,
        key_file: str | None,
        signed_file: str | None,
        digest: str | None,
        out: str | None,
        as_json: bool,
    ) -> None:
        if signed_file:
            if name or key_file or out:
                raise InputError("--signed cannot be combined with --as/--key/--out")
            doc = read_json_arg(signed_file, f"signed {noun}")
            statement = SignedStatement.from_dict(doc)
            if request_id and statement.statement.request_id != request_id:
                raise InputError(
                    f"the signed statement is for request {statement.statement.request_id}, not {request_id}"
                )
            _submit(state, statement, verdict, as_json)
            return
        if not (request_id and name and key_file):
            raise InputError("give REQUEST_ID with --as NAME --key FILE, or --signed FILE")
        key = load_approver_key(Path(key_file))
        if out and digest:
            signed = sign(Statement(request_id, digest, verdict, name, utcnow()), key)  # type: ignore[arg-type]
            with _file_errors(out, "write"):
                Path(out).write_text(signed.to_json(), encoding="utf-8")
            click.echo(f"wrote signed {noun} to {out}")
            return
        with open_engine(state) as engine:
            req = engine.get(request_id)
            the_digest = digest or req.action_digest
            if the_digest != req.action_digest:
                raise InputError(
                    f"--digest {the_digest} is not the digest of request {request_id} ({req.action_digest})"
                )
            signed = sign(Statement(req.id, the_digest, verdict, name, engine.now()), key)  # type: ignore[arg-type]
            if out:
                with _file_errors(out, "write"):
                    Path(out).write_text(signed.to_json(), encoding="utf-8")
                click.echo(f"wrote signed {noun} of {req.action['type']} on {req.action['target']} to {out}")
                return
        _submit(state, signed, verdict, as_json)

    return command


def _submit(state: CliState, signed: SignedStatement, verdict: str, as_json: bool) -> None:
    with open_engine(state) as engine:
        req = engine.approve(signed) if verdict == "approve" else engine.reject(signed)
        if as_json:
            echo_json(_request_json(engine, req))
            return
        click.echo(f"{signed.statement.approver} {verdict}d {req.id}")
        click.echo(format_request(engine, req))


# -- wait / warrant / verify / revoke / expire ----------------------------


@click.command()
@click.argument("request_id")
@click.option("--timeout", type=click.FloatRange(0, 86400), default=300, show_default=True, help="Seconds to wait.")
@click.option("--poll", type=click.FloatRange(0.05, 60), default=1.0, show_default=True, help="Seconds between checks.")
@json_option
@pass_state
def wait(state: CliState, request_id: str, timeout: float, poll: float, as_json: bool) -> None:
    """Block until a request is decided. Exit 0 granted, 3 closed otherwise, 4 on timeout."""
    with open_engine(state) as engine:
        req = engine.wait(request_id, timeout, poll_seconds=poll)
        if as_json:
            echo_json(_request_json(engine, req))
        else:
            click.echo(format_request(engine, req))
    if req.status == lifecycle.PENDING:
        raise WaitTimeoutError(f"request {request_id} is still pending after {timeout:g}s")
    if req.status != lifecycle.GRANTED:
        raise RequestClosedError(f"request {request_id} ended {req.status}")


@click.command()
@click.argument("request_id")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the token to this file (mode 0600).")
@json_option
@pass_state
def warrant(state: CliState, request_id: str, out: str | None, as_json: bool) -> None:
    """Print the warrant of a granted request (issued on first call)."""
    with open_engine(state) as engine:
        w = engine.warrant(request_id)
    if out:
        _write_private(Path(out), w.token + "\n")
    if as_json:
        echo_json({"request_id": w.request_id, "jti": w.jti, "kid": w.kid,
                   "expires_at": format_time(w.expires_at), "token": w.token})
    elif out:
        click.echo(f"warrant {w.jti} for {request_id} written to {out} (expires {format_time(w.expires_at)})")
    else:
        click.echo(w.token)


@click.command()
@click.argument("action_file", metavar="ACTION.json")
@click.option("--warrant", "token_arg", required=True, help="The warrant: a token, a file, or - for stdin.")
@click.option("--consume", is_flag=True, help="Also consume the warrant (single use): only right before acting.")
@json_option
@pass_state
def verify(state: CliState, action_file: str, token_arg: str, consume: bool, as_json: bool) -> None:
    """Verify a warrant against the action about to run (an action object, or a proposal)."""
    doc = read_json_arg(action_file, "action")
    action = doc.get("action", doc) if isinstance(doc, dict) else doc
    token = _read_text_arg(token_arg, "warrant")
    with open_engine(state) as engine:
        guard = engine.guard()
        if consume:
            grant = guard.consume(token, action)
            claims = grant.claims
        else:
            claims = guard.check(token, action)
    result = {
        "valid": True,
        "consumed": consume,
        "request_id": claims.request_id,
        "jti": claims.jti,
        "tier": claims.tier,
        "action_digest": claims.action_digest,
        "expires_at": format_time(claims.expires_at),
        "approvals": [dict(a) for a in claims.approvals],
        "kid": claims.kid,
    }
    if as_json:
        echo_json(result)
        return
    who = ", ".join(str(a.get("approver")) for a in claims.approvals) or "none (auto_allow)"
    click.echo(f"warrant OK for {claims.request_id} ({claims.tier}; approvals: {who}); "
               f"expires {result['expires_at']}" + ("; CONSUMED" if consume else ""))


@click.command()
@click.argument("request_id")
@click.option("--as", "name", required=True, help="Your approver name in the inventory.")
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False), help="Your Ed25519 private key.")
@json_option
@pass_state
def revoke(state: CliState, request_id: str, name: str, key_file: str, as_json: bool) -> None:
    """Revoke a pending or granted-but-unused request; its warrant then fails at the guard."""
    key = load_approver_key(Path(key_file))
    with open_engine(state) as engine:
        req = engine.get(request_id)
        signed = sign(Statement(req.id, req.action_digest, "reject", name, engine.now()), key)
        req = engine.revoke(request_id, by=name, signed=signed)
        if as_json:
            echo_json(_request_json(engine, req))
        else:
            click.echo(f"{name} revoked {req.id}")


@click.command()
@json_option
@pass_state
def expire(state: CliState, as_json: bool) -> None:
    """Expire requests whose approval window or warrant lapsed (run periodically)."""
    with open_engine(state) as engine:
        changed = engine.expire_due()
    if as_json:
        echo_json([{"id": r.id, "status": r.status} for r in changed])
        return
    click.echo(f"{len(changed)} request(s) changed")
    for r in changed:
        click.echo(f"  {r.id} -> {r.status}")


# -- keys ------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Approver keys and the engine's signing keys."""


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents with mode 0700; leave existing ones as they are."""
    missing = []
    d = directory
    while not d.exists():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    for d in reversed(missing):
        with _file_errors(d, "create directory"):
            d.mkdir(mode=0o700)
            # mkdir's mode is filtered by the umask; 0700 must hold whatever it is.
            os.chmod(d, 0o700)


@keys.command("generate")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Private key file to create (mode 0600).")
@json_option
def keys_generate(out: str, as_json: bool) -> None:
    """Create an approver key pair; print the public key to put in the inventory.

    Missing parent directories are created with mode 0700 (e.g. ~/.hitlgate):
    a private key belongs in a directory only its owner can list.
    """
    path = Path(out).expanduser()
    _make_private_dirs(path.parent)
    public = generate_approver_key(path)
    if as_json:
        echo_json({"private_key_file": out, "public_key": public})
        return
    click.echo(f"private key written to {out} (mode 0600); add this to the inventory under approvers.NAME:")
    click.echo(f'  public_key: "{public}"')


@keys.command("rotate")
@json_option
@pass_state
def keys_rotate(state: CliState, as_json: bool) -> None:
    """Retire the engine's current signing key and make a new one."""
    ring = _keyring(state)
    old = ring.current_kid
    new = ring.rotate()
    if as_json:
        echo_json({"retired": old, "current": new})
    else:
        click.echo(f"rotated engine key: {old} retired (stays in the JWKS for its grace window), {new} current")


@keys.command("jwks")
@click.option("--all", "include_expired", is_flag=True, help="Include keys past their grace window (for auditors).")
@pass_state
def keys_jwks(state: CliState, include_expired: bool) -> None:
    """Print the engine's public JWKS (current key plus retired keys still in grace)."""
    echo_json(_keyring(state).jwks(include_expired=include_expired))


def _keyring(state: CliState) -> EngineKeyring:
    ttl = state.config.warrant_ttl_seconds
    return EngineKeyring.load_or_create(state.config.key_dir, retire_after_seconds=max(3600, 2 * ttl))


# -- audit -----------------------------------------------------------------


@click.group()
def audit() -> None:
    """The tamper-evident audit chain."""


@audit.command("verify")
@click.option("--jwks", "jwks_file", help="Trust only these keys (a JWKS file), not the local keyring.")
@click.option("--file", "export_file", type=click.Path(dir_okay=False), help="Verify an export instead of the store.")
@click.option(
    "--anchor",
    "anchor_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Also check against the signed checkpoints in this file: a copy of the audit anchor or an "
    "earlier export kept elsewhere. Repeatable.",
)
@json_option
@pass_state
def audit_verify(
    state: CliState, jwks_file: str | None, export_file: str | None, anchor_files: tuple[str, ...], as_json: bool
) -> None:
    """Check every event and signed checkpoint; name the first bad event.

    The store is checked against its own checkpoints, the engine's audit
    anchor file and every --anchor. With --file an export is checked
    instead, against its checkpoints and every --anchor; add --jwks to use
    only a trusted public JWKS (offline: no local keys or database).
    """
    keys_ = EngineKeyring.from_jwks(read_json_arg(jwks_file, "JWKS")) if jwks_file else None
    anchors = [cp for f in anchor_files for cp in load_external_anchor(Path(f))]
    if export_file:
        if keys_ is None:
            keys_ = _keyring(state).public_keys(include_expired=True)
        with _file_errors(export_file, "read"), open(export_file, encoding="utf-8") as fh:
            exported = read_export(fh)
        report = verify_chain(exported.events, exported.checkpoints, keys_, anchors=anchors)
        summary = {"ok": True, "events": report.events_checked, "checkpoints": report.checkpoints_verified,
                   "anchored": report.anchored, "head_seq": report.last_seq, "head_hash": report.head_hash}
        text = (f"audit export OK: {report.events_checked} events, {report.checkpoints_verified} signed "
                f"checkpoint(s), {report.anchored} from --anchor files, "
                f"head #{report.last_seq} {report.head_hash}")
    else:
        with open_engine(state) as engine:
            r = engine.verify_audit(keys_, anchors=anchors)
        summary, text = r.to_dict(), r.describe()
    if as_json:
        echo_json(summary)
    else:
        click.echo(text)


@audit.command("export")
@click.option("--out", type=click.Path(dir_okay=False), help="File to write (default: stdout).")
@click.option("--request", "request_id", help="Only this request's events (not verifiable as a chain).")
@pass_state
def audit_export(state: CliState, out: str | None, request_id: str | None) -> None:
    """Write the chain (events, then checkpoints) as JSON Lines."""
    with open_engine(state) as engine:
        if out:
            with _file_errors(out, "write"), open(out, "w", encoding="utf-8") as fh:
                n, c = engine.export_audit(fh, request_id=request_id)
            click.echo(f"wrote {n} events and {c} checkpoint(s) to {out}", err=True)
        else:
            engine.export_audit(sys.stdout, request_id=request_id)


@audit.command("checkpoint")
@json_option
@pass_state
def audit_checkpoint(state: CliState, as_json: bool) -> None:
    """Sign the current chain head now."""
    with open_engine(state) as engine:
        cp = engine.checkpoint()
    if as_json:
        echo_json(cp.to_dict())
    else:
        click.echo(f"checkpoint at #{cp.seq} {cp.head_hash} signed by {cp.kid}")


@audit.command("anchor")
@click.option("--reinit", is_flag=True, help="Start a new audit anchor because the old one is lost.")
@click.option("--reason", help="Why the anchor was lost (recorded in the audit chain).")
@json_option
@pass_state
def audit_anchor(state: CliState, reinit: bool, reason: str | None, as_json: bool) -> None:
    """Start a new audit anchor after the old one was lost: an audit event of its own.

    The engine refuses to write while the anchor is missing and the database
    holds checkpoints; restore the anchor from a backup if you can.
    """
    if not reinit:
        raise InputError("nothing to do: pass --reinit --reason TEXT to start a new audit anchor")
    if not reason or not reason.strip():
        raise InputError("--reinit needs --reason TEXT: say why the audit anchor was lost")
    with open_engine(state) as engine:
        cp = engine.reinit_anchor(reason)
        path = str(engine.anchor.path)
    if as_json:
        echo_json({"anchor": path, "checkpoint": cp.to_dict()})
    else:
        click.echo(f"new audit anchor {path} started at #{cp.seq} {cp.head_hash}")


def register(cli: click.Group) -> None:
    """Add the workflow commands to the root group."""
    for cmd in (propose, requests, show, _vote_command("approve"), _vote_command("reject"), wait, warrant,
                verify, revoke, expire, keys, audit):
        cli.add_command(cmd)

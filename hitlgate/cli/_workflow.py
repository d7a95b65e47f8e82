"""CLI commands of the approval workflow: a thin shell over :mod:`hitlgate.engine.approve.workflow`.

``propose``, ``requests``, ``show``, ``approve``, ``reject``, ``wait``,
``warrant``, ``verify``, ``revoke``, ``expire``, ``keys …`` and ``audit …``.
Every command prints for people by default and JSON with ``--json``; every
file a command writes goes through :func:`hitlgate.engine._files.write_file`
(no symlinks followed, no overwrite without ``--force``, atomic).
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import click

from hitlgate.cli._common import (
    UTF8_TEXT,
    CliState,
    FiniteRange,
    OutFile,
    bullet,
    check_text_arg,
    current_limits,
    decision_exit_code,
    echo_json,
    examples,
    json_option,
    pass_state,
    read_json_arg,
    read_text_arg,
)
from hitlgate.engine._files import write_file
from hitlgate.engine._safeparse import LimitedLines
from hitlgate.engine._time import format_time, utcnow
from hitlgate.engine.approve import lifecycle
from hitlgate.engine.approve.approvals import MAX_REASON_LENGTH, SignedStatement, Statement, sign
from hitlgate.engine.decide.proposal import Proposal
from hitlgate.engine.keys.keyring import EngineKeyring, generate_approver_key, load_approver_key, retire_after_for
from hitlgate.engine.ledger.anchor import load_external_anchor
from hitlgate.engine.ledger.audit import read_export, verify_chain
from hitlgate.errors import (
    EXIT_OK,
    EXIT_PENDING,
    EXIT_REFUSED,
    AuditChainError,
    HitlgateError,
    InputError,
    NotFoundError,
    ValidationError,
)

if TYPE_CHECKING:
    # The store and workflow pull in SQLAlchemy; import them only when a
    # workflow command runs, so `hitlgate decide` starts fast.
    from hitlgate.engine.approve.workflow import Engine
    from hitlgate.engine.ledger.store import Request

#: Exit codes of ``hitlgate wait``.
WAIT_GRANTED, WAIT_CLOSED, WAIT_TIMEOUT = EXIT_OK, EXIT_REFUSED, EXIT_PENDING


class WaitTimeoutError(HitlgateError):
    """``hitlgate wait`` gave up before the request was decided."""

    exit_code = WAIT_TIMEOUT
    code = "timeout"


class RequestClosedError(HitlgateError):
    """``hitlgate wait`` saw the request end without a grant."""

    exit_code = WAIT_CLOSED
    code = "request_closed"


#: Re-exported: the CLI's and the service's one rendering of a warrant's state.
warrant_state = lifecycle.warrant_state


def describe_warrant(w: dict[str, Any]) -> str:
    """One line for people: "consumed 2026-... (outcome: executed)"."""
    if w["state"] == "none":
        return "none"
    if w["state"] == "consumed":
        text = f"consumed {w['consumed_at']}"
        return text + (f" (outcome: {w['outcome']})" if w["outcome"] else " (no outcome reported yet)")
    if w["state"] == "expired":
        return f"expired unused at {w['expires_at']}"
    return f"issued, unused, expires {w['expires_at']}"


@contextmanager
def open_engine(state: CliState) -> Iterator[Engine]:
    """An engine on the configured store, keys and policy; closed afterwards."""
    from hitlgate.engine.approve.workflow import Engine

    engine = Engine.from_config(state.config)
    try:
        yield engine
    finally:
        engine.close()


#: What a request's ``expires_at`` is, by status: the approval window's end while pending, and from the grant on
#: the warrant lifetime's end (the grant lapses unless a warrant is used by then). Otherwise: when it ran out.
_DEADLINE_LABEL = {"pending": "approve by", "granted": "use by"}


def format_request(
    engine: Engine, req: Request, *, verbose: bool = False, warrant: dict[str, Any] | None = None,
    verify_votes: bool = False,
) -> str:
    """Human-readable rendering of a request (with its warrant's state when ``warrant`` is given).

    With ``verify_votes`` (``show``) every stored approval is re-verified and
    the quorum counts only those that verify; the others are marked.
    """
    action = req.action
    proposal = req.proposal
    lines = [
        f"{_shown(req.id)}  {_shown(req.status.upper())}  {_shown(req.tier)}",
        f"  action:    {_shown(action['type'])} on {_shown(action['target'])}"
        + (f" {json.dumps(action['parameters'], sort_keys=True)}" if action["parameters"] else ""),
        f"  digest:    {_shown(req.action_digest)}",
        f"  requester: {_shown(req.requester)}",
    ]
    # What the agent gave as its reason: an approver signing from the command line must see it too.
    lines.extend(_field("  why:       ", proposal.get("justification")))
    context = [f"incident {proposal['incident']}" if isinstance(proposal.get("incident"), str) else "",
               f"confidence {proposal['confidence']}" if isinstance(proposal.get("confidence"), int | float) else ""]
    if any(context):
        lines.append(f"  context:   {_shown(', '.join(c for c in context if c))}")
    blast = req.decision.blast_radius
    if any(blast.values()):
        lines.append("  blast:     " + _shown("; ".join(f"{k}: {', '.join(v)}" for k, v in blast.items() if v)))
    lines.append(f"  created:   {format_time(req.created_at)}   {_DEADLINE_LABEL.get(req.status, 'expires')}: "
                 f"{format_time(req.expires_at)}")
    unverified: dict[str, str] = {}
    if req.decision.needs_approval:
        if verify_votes:
            progress, unverified = engine.checked_progress(req.id)
        else:
            progress = engine.progress(req.id)
        lines.append(f"  quorum:    {progress.describe()}")
    lines.extend(_field("  status:    ", req.status_reason))
    for v in req.votes:
        bad = (" -- NOT COUNTED: signature invalid for this request (forged row?)"
               if v.verdict == "approve" and v.approver in unverified else "")
        lines.append(f"  vote:      {_shown(v.approver)} {_PAST.get(v.verdict, _shown(v.verdict))} at "
                     f"{format_time(v.signed_at)}{bad}")
        inner = v.statement.get("statement") if isinstance(v.statement, Mapping) else None
        # The approver's own words, signed with the vote (a damaged row has none to show).
        lines.extend(_field("             because: ", inner.get("reason") if isinstance(inner, Mapping) else None))
    if warrant is not None:
        lines.append(f"  warrant:   {describe_warrant(warrant)}")
    if req.decision.fail_closed is not None:
        lines.append(f"  FAILED CLOSED: {req.decision.fail_closed['code']} (the policy did not decide this deny)")
    if verbose:
        lines.append("  reasons:")
        lines.extend(bullet(_shown(r, keep_newlines=True)) for r in req.decision.reasons)
        lines.append(f"  policy:    {_shown(req.policy_revision)}")
    return "\n".join(lines)


#: Characters a terminal acts on rather than prints, or that print as nothing: C0 and C1 controls (escape
#: sequences, carriage return, backspace), the bidirectional overrides, isolates and marks that reorder what
#: follows them, and the zero-width characters that hide a difference between two names that look the same
#: (the joiners U+200C/U+200D stay: emoji sequences and Persian need them, and reasons may hold them).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2069\u2028\u2029\ufeff]")


def _shown(text: Any, *, keep_newlines: bool = False) -> str:
    """``text`` safe to print on a terminal: each control character as a visible escape (``\\x1b``).

    Stored text is written by agents, executors and the policy, and a row
    may have been edited in the database: printed raw, an escape sequence
    could retitle the terminal, and a newline could forge a line of the
    request (a vote that was never cast).
    """
    value = text if isinstance(text, str) else str(text)

    def escape(m: re.Match[str]) -> str:
        ch = m.group()
        return ch if keep_newlines and ch == "\n" else f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"

    return _UNPRINTABLE.sub(escape, value)


def _field(label: str, text: Any) -> list[str]:
    """``label`` and ``text`` (escaped), its further lines indented under the first; nothing for no text."""
    if not isinstance(text, str) or not text.strip():
        return []
    first, *rest = _shown(text, keep_newlines=True).split("\n")
    pad = " " * len(label)
    return [label + first, *(pad + line for line in rest)]


def _warrant_of(engine: Engine, req: Request) -> dict[str, Any]:
    return warrant_state(req, engine.warrant_records([req.id]).get(req.id), engine.now())


def _request_json(
    engine: Engine, req: Request, warrant: dict[str, Any] | None = None, *, verify_votes: bool = False
) -> dict[str, Any]:
    out = req.to_dict()
    if req.decision.needs_approval:
        if verify_votes:
            progress, unverified = engine.checked_progress(req.id)
            out["quorum_progress"] = progress.to_dict()
            out["unverified_approvals"] = unverified
        else:
            out["quorum_progress"] = engine.progress(req.id).to_dict()
    out["warrant"] = warrant if warrant is not None else _warrant_of(engine, req)
    return out


@contextmanager
def _file_errors(path: str | Path, doing: str) -> Iterator[None]:
    """Report an OS error on ``path`` as an :class:`InputError` the root prints, not as a traceback."""
    try:
        yield
    except OSError as exc:
        # A file that cannot be read is `unreadable`, as every document argument's (README, the command line contract).
        raise InputError(f"cannot {doing} {path}: {exc.strerror or exc}",
                         code="unreadable" if doing == "read" else None) from exc


def force_option(f: Any) -> Any:
    """``--force``: let ``--out`` replace an existing regular file (never a symlink)."""
    return click.option("--force", is_flag=True, help="Overwrite an existing --out file.")(f)


_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _read_text_arg(value: str, what: str) -> str:
    """A compact JWS given literally, ``-`` for stdin, or a file path (``@FILE`` also works)."""
    if value == "-":
        return read_text_arg("-", what)
    if _COMPACT_JWS.fullmatch(check_text_arg(value, what).strip()):
        return value.strip()
    path = Path(value[1:] if value.startswith("@") else value)
    if path.is_file():
        return read_text_arg(str(path), what)
    raise InputError(f"{what}: not a compact JWS and not a readable file")


# -- propose / requests / show -------------------------------------------


@click.command(epilog=examples("hitlgate propose proposal.json", "hitlgate --json propose - < proposal.json"))
@click.argument("proposal_file", metavar="PROPOSAL.json")
@json_option
@pass_state
def propose(state: CliState, proposal_file: str) -> None:
    """Decide a proposal and store it as a request (PROPOSAL.json, or - for stdin).

    The proposal format: 'hitlgate schema proposal' prints its JSON Schema.

    \b
    Exit codes:
      0  auto_allow: granted, fetch the warrant
      3  deny: stored as denied
      4  approval required: the request is pending
      5  policy broken: the engine failed closed to deny (see decision.fail_closed)
      1  backend unavailable (failed closed to deny) or a storage error
      2  invalid proposal
    """
    proposal = Proposal.from_dict(read_json_arg(proposal_file, "proposal"), limits=current_limits())
    with open_engine(state) as engine:
        req = engine.propose(proposal)
        if state.json:
            echo_json(_request_json(engine, req))
        else:
            click.echo(format_request(engine, req, verbose=True))
            if req.status == lifecycle.GRANTED:
                click.echo(f"\nauto-allowed: fetch the warrant with 'hitlgate warrant {req.id} --out warrant.jws'")
            elif req.status == lifecycle.PENDING:
                click.echo(f"\nwaiting for approval: 'hitlgate approve {req.id} --as NAME --key FILE'")
    click.get_current_context().exit(decision_exit_code(req.decision))


@click.command(epilog=examples("hitlgate requests --status pending", "hitlgate --json requests --limit 10"))
@click.option("--status", type=click.Choice(lifecycle.STATES), help="Only requests in this state.")
# 100000 is hitlgate.engine.ledger.store.MAX_LIST_LIMIT, spelled out: importing the store here would load SQLAlchemy
# at every start-up.
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--cursor", type=UTF8_TEXT,
              help="Continue after this request: TIME~ID of the last one listed (see the hint).")
@json_option
@pass_state
def requests(state: CliState, status: str | None, limit: int, cursor: str | None) -> None:
    """List requests, newest first, with the state of each warrant.

    The warrant column is none, issued, expired or consumed (with the
    outcome the executor reported). A full page ends with a hint on stderr
    naming the --cursor that lists the next one (with --json: the last
    request's created_at~id). Exit code 0, or 2 for a malformed --cursor.
    """
    from hitlgate.engine.ledger.store import ListCursor

    before = ListCursor.decode(cursor) if cursor is not None else None
    with open_engine(state) as engine:
        reqs = engine.list(status, limit=limit, before=before)
        records = engine.warrant_records([r.id for r in reqs])
        now = engine.now()
    warrants = {r.id: warrant_state(r, records.get(r.id), now) for r in reqs}
    if state.json:
        echo_json([{**r.to_dict(), "warrant": warrants[r.id]} for r in reqs])
        return
    if not reqs:
        click.echo("no requests" + (f" in state {status}" if status else ""))
    for r in reqs:
        a = r.action
        w = warrants[r.id]
        wtext = w["state"] + (f":{w['outcome']}" if w.get("outcome") else "")
        click.echo(f"{r.id}  {r.status:<17} {r.tier:<15} warrant {wtext:<17} {a['type']} on {a['target']}")
    if len(reqs) == limit:
        more = f" --status {status}" if status else ""
        click.echo(f"next page: hitlgate requests{more} --limit {limit} --cursor {ListCursor.after(reqs[-1]).encode()}",
                   err=True)


@click.command(epilog=examples("hitlgate show REQUEST_ID", "hitlgate --json show REQUEST_ID --events"))
@click.argument("request_id", type=UTF8_TEXT)
@click.option("--events", is_flag=True, help="Also list the request's audit events.")
@json_option
@pass_state
def show(state: CliState, request_id: str, events: bool) -> None:
    """Show one request: decision, quorum progress, votes, and its warrant's state.

    Exit code 0, or 2 when the request does not exist (code not_found).
    """
    with open_engine(state) as engine:
        req = engine.get(request_id)
        evs = engine.audit_events(request_id) if events else []
        warrant = _warrant_of(engine, req)
        if state.json:
            out = _request_json(engine, req, warrant, verify_votes=True)
            if events:
                out["events"] = [e.to_dict() for e in evs]
            echo_json(out)
            return
        click.echo(format_request(engine, req, verbose=True, warrant=warrant, verify_votes=True))
        for e in evs:
            click.echo(f"  #{e.seq:<5} {format_time(e.at)}  {e.kind}")


# -- votes -------------------------------------------------------------------


#: A vote's verdict as a verb in the past tense ("reject" + "d" would read "rejectd").
_PAST = {"approve": "approved", "reject": "rejected"}


def _vote_command(verdict: str) -> click.Command:
    noun = "approval" if verdict == "approve" else "rejection"
    article = "an" if verdict == "approve" else "a"

    @click.command(
        name=verdict,
        help=f"Sign and submit {article} {noun}, or submit one signed elsewhere.\n\n"
        "Give REQUEST_ID with --as NAME --key FILE, or --signed FILE. With --out the signed "
        "statement is written to a file instead of submitted (offline signing: add --digest).\n\n"
        "\b\nExit codes:\n"
        "  0  recorded (or written with --out)\n"
        f"  3  refused: signature, eligibility, self-{verdict}, a second vote, a closed request\n"
        "  2  bad arguments, unknown request (code not_found) or key file",
        epilog=examples(
            f"hitlgate {verdict} REQUEST_ID --as alice --key ~/.hitlgate/alice.pem",
            f"hitlgate {verdict} REQUEST_ID --as alice --key ~/.hitlgate/alice.pem --reason "
            + ("'checked with the owner'" if verdict == "approve" else "'owner is mid-deploy; after 18:00'"),
            f"hitlgate {verdict} --signed {noun}.json",
        ),
    )
    @click.argument("request_id", type=UTF8_TEXT, required=False)
    @click.option("--as", "name", type=UTF8_TEXT, help="Your approver name in the inventory.")
    @click.option("--key", "key_file", type=click.Path(dir_okay=False), help="Your Ed25519 private key (PEM).")
    @click.option("--signed", "signed_file", help=f"A signed {noun} statement (JSON file, or - for stdin).")
    @click.option("--reason", type=UTF8_TEXT, help=f"Why you {verdict} (signed into the statement and kept in "
                  f"the audit trail; at most {MAX_REASON_LENGTH} characters).")
    @click.option("--digest", help="Action digest to sign (for offline signing with --out; default: the stored one).")
    @click.option("--out", type=OutFile(), help="Write the signed statement here; do not submit.")
    @force_option
    @json_option
    @pass_state
    def command(
        state: CliState,
        request_id: str | None,
        name: str | None,
        key_file: str | None,
        signed_file: str | None,
        reason: str | None,
        digest: str | None,
        out: str | None,
        force: bool,
    ) -> None:
        if signed_file:
            if name or key_file or out or reason is not None:
                raise InputError("--signed cannot be combined with --as/--key/--out/--reason (a reason is signed into "
                                 "the statement)")
            doc = read_json_arg(signed_file, f"signed {noun}")
            statement = SignedStatement.from_dict(doc)
            if request_id and statement.statement.request_id != request_id:
                raise InputError(
                    f"the signed statement is for request {statement.statement.request_id}, not {request_id}"
                )
            _submit(state, statement, verdict)
            return
        if not (request_id and name and key_file):
            missing = [what for what, given in (("REQUEST_ID", request_id), ("--as NAME", name),
                                                ("--key FILE (your Ed25519 private key)", key_file)) if not given]
            raise InputError(f"missing {', '.join(missing)}: give REQUEST_ID with --as NAME --key FILE, or "
                             "--signed FILE", code="missing_parameter")
        if reason is not None and not reason.strip():
            raise InputError("--reason: must not be empty (leave the option out for no reason)")
        why = reason.strip() if reason else ""
        key = load_approver_key(Path(key_file))
        if out and digest:
            signed = sign(Statement(request_id, digest, verdict, name, utcnow(), why), key)  # type: ignore[arg-type]
            _write_statement(out, signed, noun, force, f"wrote signed {noun} to {out}")
            return
        with open_engine(state) as engine:
            try:
                req = engine.get(request_id)
            except NotFoundError as exc:
                if not out:
                    raise
                # Offline signing happens where the store is not: the digest must come with the request id.
                raise NotFoundError(
                    f"{exc}; to sign offline (with --out, on a machine without the state store) add "
                    f"--digest: the request's action_digest, from `hitlgate show {request_id} --json` "
                    "where the store is (or the action_digest the HTTP API returned)"
                ) from exc
            the_digest = digest or req.action_digest
            if the_digest != req.action_digest:
                raise InputError(
                    f"--digest {the_digest} is not the digest of request {request_id} ({req.action_digest})"
                )
            signed = sign(Statement(req.id, the_digest, verdict, name, engine.now(), why), key)  # type: ignore[arg-type]
            if out:
                text = f"wrote signed {noun} of {req.action['type']} on {req.action['target']} to {out}"
                _write_statement(out, signed, noun, force, text)
                return
        _submit(state, signed, verdict)

    return command


def _write_statement(out: str, signed: SignedStatement, noun: str, force: bool, text: str) -> None:
    write_file(out, signed.to_json(), secret=False, overwrite=force, what=f"signed {noun}")
    if _json_mode():
        echo_json({"out": out, "statement": json.loads(signed.to_json())})
    else:
        click.echo(text)


def _json_mode() -> bool:
    state = click.get_current_context().find_object(CliState)
    return state is not None and state.json


def _submit(state: CliState, signed: SignedStatement, verdict: str) -> None:
    with open_engine(state) as engine:
        req = engine.approve(signed) if verdict == "approve" else engine.reject(signed)
        if state.json:
            echo_json(_request_json(engine, req))
            return
        click.echo(f"{signed.statement.approver} {_PAST[verdict]} {req.id}")
        click.echo(format_request(engine, req))


# -- wait / warrant / verify / revoke / expire ----------------------------


@click.command(epilog=examples("hitlgate wait REQUEST_ID --timeout 600", "hitlgate --json wait REQUEST_ID"))
@click.argument("request_id", type=UTF8_TEXT)
@click.option("--timeout", type=FiniteRange(0, 86400), default=300, show_default=True, help="Seconds to wait.")
@click.option("--poll", type=FiniteRange(0.05, 60), default=1.0, show_default=True, help="Seconds between checks.")
@json_option
@pass_state
def wait(state: CliState, request_id: str, timeout: float, poll: float) -> None:
    """Block until a request is decided, then print it.

    \b
    Exit codes:
      0  granted (or already executed)
      3  closed without a grant: denied, rejected, expired, revoked
      4  still pending when --timeout ran out
      2  unknown request (code not_found)
    With --json a request that exists is printed on stdout whatever its
    state, and no second (error) document follows.
    """
    with open_engine(state) as engine:
        req = engine.wait(request_id, timeout, poll_seconds=poll)
        if state.json:
            echo_json(_request_json(engine, req))
        else:
            click.echo(format_request(engine, req))
    ctx = click.get_current_context()
    if req.status == lifecycle.PENDING:
        if state.json:
            ctx.exit(WAIT_TIMEOUT)
        raise WaitTimeoutError(f"request {request_id} is still pending after {timeout:g}s")
    if req.status != lifecycle.GRANTED and req.status not in lifecycle.OUTCOMES:
        if state.json:
            ctx.exit(WAIT_CLOSED)
        raise RequestClosedError(f"request {request_id} ended {req.status}")


@click.command(epilog=examples("hitlgate warrant REQUEST_ID --out warrant.jws", "hitlgate --json warrant REQUEST_ID"))
@click.argument("request_id", type=UTF8_TEXT)
@click.option("--out", type=OutFile(), help="Write the token to this file (mode 0600); recommended.")
@force_option
@json_option
@pass_state
def warrant(state: CliState, request_id: str, out: str | None, force: bool) -> None:
    """Print the warrant of a granted request (issued on first call).

    A warrant is a bearer token until it is consumed. With --out it is
    written to the file with mode 0600 and never printed: stdout (and the
    --json document) carry only the path, jti, expiry and file mode.
    Without --out the token itself is printed on stdout (in --json, as
    "token"), so stdout then carries a secret: prefer --out over
    redirecting stdout into a file.

    \b
    Exit codes:
      0  the warrant (issued now or earlier, unused)
      2  unknown request, or --out exists (no --force) or is a symbolic link
      3  no warrant: denied, rejected, expired, revoked, or already used
      4  the request is still pending approval
    """
    with open_engine(state) as engine:
        w = engine.warrant(request_id)
    if out:
        written = write_file(out, w.token + "\n", secret=True, overwrite=force, what="warrant")
        if state.json:
            echo_json({"request_id": w.request_id, "jti": w.jti, "kid": w.kid,
                       "expires_at": format_time(w.expires_at), "out": str(written), "mode": "0600"})
        else:
            click.echo(f"warrant {w.jti} for {request_id} written to {written} (mode 0600, "
                       f"expires {format_time(w.expires_at)})")
    elif state.json:
        echo_json({"request_id": w.request_id, "jti": w.jti, "kid": w.kid,
                   "expires_at": format_time(w.expires_at), "token": w.token})
    else:
        click.echo(w.token)


@click.command(
    epilog=examples(
        "hitlgate verify action.json --warrant warrant.jws",
        "hitlgate --json verify action.json --warrant warrant.jws --consume",
    )
)
@click.argument("action_file", metavar="ACTION.json")
@click.option("--warrant", "token_arg", required=True, help="The warrant: a token, a file, or - for stdin.")
@click.option("--consume", is_flag=True, help="Also consume the warrant (single use): only right before acting.")
@json_option
@pass_state
def verify(state: CliState, action_file: str, token_arg: str, consume: bool) -> None:
    """Verify a warrant against the action about to run (an action object, or a proposal).

    \b
    Exit codes:
      0  valid (and consumed, with --consume)
      3  refused: replay, digest_mismatch, expired, unknown key, bad signature...
      2  unreadable action or warrant argument
    """
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
    if state.json:
        echo_json(result)
        return
    who = ", ".join(str(a.get("approver")) for a in claims.approvals) or "none (auto_allow)"
    click.echo(f"warrant OK for {claims.request_id} ({claims.tier}; approvals: {who}); "
               f"expires {result['expires_at']}" + ("; CONSUMED" if consume else ""))


@click.command(epilog=examples(
    "hitlgate outcome REQUEST_ID --jti JTI --outcome executed",
    "hitlgate outcome REQUEST_ID --jti JTI --outcome failed --detail 'rotation API returned 503'",
))
@click.argument("request_id", type=UTF8_TEXT)
@click.option("--jti", required=True, type=UTF8_TEXT,
              help="The id of the warrant `verify --consume` used up (its --json output names it).")
@click.option("--outcome", "word", required=True, type=click.Choice(sorted(lifecycle.OUTCOMES_BY_WORD)),
              help="How the action ended: executed, failed, or unknown (it may or may not have taken effect).")
@click.option("--detail", default="", type=UTF8_TEXT, help="What happened, for the audit trail (kept to 2,000 "
              "characters; newlines and tabs allowed, no other control characters).")
@json_option
@pass_state
def outcome(state: CliState, request_id: str, jti: str, word: str, detail: str) -> None:
    """Record how an action run after `verify --consume` ended, in the request and the audit chain.

    The executor's report, as the Python guard records it by itself and
    `POST /v1/requests/{id}/outcome` records it over HTTP: only for the
    warrant the guard consumed for this request, and only once.

    \b
    Exit codes:
      0  recorded
      2  bad arguments (an outcome detail with control characters), unknown request (code not_found)
      3  refused: that warrant was not consumed for this request, or an outcome was already recorded
    """
    with open_engine(state) as engine:
        engine.get(request_id)
        engine.guard().report(request_id, jti, lifecycle.OUTCOMES_BY_WORD[word], detail)
        req = engine.get(request_id)
        if state.json:
            echo_json(_request_json(engine, req))
        else:
            click.echo(f"recorded {word} for {req.id}")


@click.command(epilog=examples("hitlgate revoke REQUEST_ID --as alice --key ~/.hitlgate/alice.pem"))
@click.argument("request_id", type=UTF8_TEXT)
@click.option("--as", "name", type=UTF8_TEXT, required=True, help="Your approver name in the inventory.")
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False), help="Your Ed25519 private key.")
@json_option
@pass_state
def revoke(state: CliState, request_id: str, name: str, key_file: str) -> None:
    """Revoke a pending or granted-but-unused request; its warrant then fails at the guard.

    \b
    Exit codes:
      0  revoked
      2  unknown request (code not_found), or an unreadable key file
      3  refused: not eligible, already used or closed
    """
    key = load_approver_key(Path(key_file))
    with open_engine(state) as engine:
        req = engine.get(request_id)
        signed = sign(Statement(req.id, req.action_digest, "reject", name, engine.now()), key)
        req = engine.revoke(request_id, by=name, signed=signed)
        if state.json:
            echo_json(_request_json(engine, req))
        else:
            click.echo(f"{name} revoked {req.id}")


@click.command(epilog=examples("hitlgate expire", "hitlgate --json expire"))
@json_option
@pass_state
def expire(state: CliState) -> None:
    """Expire requests whose approval window or warrant lapsed (run periodically). Exit code 0."""
    with open_engine(state) as engine:
        changed = engine.expire_due()
    if state.json:
        echo_json([{"id": r.id, "status": r.status} for r in changed])
        return
    click.echo(f"{len(changed)} request(s) changed")
    for r in changed:
        click.echo(f"  {r.id} -> {r.status}")


# -- keys ------------------------------------------------------------------


@click.group(epilog=examples("hitlgate keys generate --out ~/.hitlgate/alice.pem", "hitlgate keys jwks > jwks.json"))
def keys() -> None:
    """Approver keys and the engine's signing keys."""


@keys.command("generate", epilog=examples("hitlgate keys generate --out ~/.hitlgate/alice.pem"))
@click.option(
    "--out",
    required=True,
    type=OutFile(),
    help="Private key file to create (mode 0600; missing folders are created with 0700).",
)
@json_option
@pass_state
def keys_generate(state: CliState, out: str) -> None:
    """Create an approver key pair; print the public key to put in the inventory.

    Missing parent directories are created with mode 0700 (e.g. ~/.hitlgate):
    a private key belongs in a directory only its owner can list. Never
    overwrites an existing file or follows a symbolic link: replacing
    someone's key would orphan the public key registered for them.
    Exit code 0, or 2 when --out exists or cannot be written.
    """
    public = generate_approver_key(Path(out))
    if state.json:
        echo_json({"private_key_file": out, "public_key": public})
        return
    click.echo(f"private key written to {out} (mode 0600); add this to the inventory under approvers.NAME:")
    click.echo(f'  public_key: "{public}"')


@keys.command("rotate", epilog=examples("hitlgate keys rotate", "hitlgate --json keys rotate"))
@json_option
@pass_state
def keys_rotate(state: CliState) -> None:
    """Retire the engine's current signing key and make a new one. Exit code 0."""
    ring = _keyring(state)
    old = ring.current_kid
    new = ring.rotate()
    if state.json:
        echo_json({"retired": old, "current": new})
    else:
        click.echo(f"rotated engine key: {old} retired (stays in the JWKS for its grace window), {new} current")


@keys.command("reinit", epilog=examples('hitlgate keys reinit --reason "key disk lost, no backup"'))
@click.option("--reason", type=UTF8_TEXT, required=True,
              help="Why the old keys are lost for good (recorded in the audit chain).")
@json_option
@pass_state
def keys_reinit(state: CliState, reason: str) -> None:
    """Start a new engine keyring after the old one was lost for good: an audit event of its own.

    Restore the key directory from a backup if you can: checkpoints signed
    by the lost keys can afterwards only be verified with their JWKS
    (audit verify --jwks). Exit code 0, or 2 while a keyring exists.
    """
    with open_engine(state) as engine:
        kid = engine.replace_lost_keyring(reason)
        key_dir = str(engine.keyring.key_dir)
    if state.json:
        echo_json({"key_dir": key_dir, "current": kid})
    else:
        click.echo(f"new engine keyring in {key_dir}; current key {kid}")


@keys.command("jwks", epilog=examples("hitlgate keys jwks > jwks.json", "hitlgate keys jwks --all"))
@click.option("--all", "include_expired", is_flag=True, help="Include keys past their grace window (for auditors).")
@json_option
@pass_state
def keys_jwks(state: CliState, include_expired: bool) -> None:
    """Print the engine's public JWKS (current key plus retired keys still in grace).

    The output is always JSON; --json is accepted for uniformity. Exit code 0.
    """
    echo_json(_keyring(state).jwks(include_expired=include_expired))


def _keyring(state: CliState) -> EngineKeyring:
    return EngineKeyring.load_or_create(state.config.key_dir,
                                        retire_after_seconds=retire_after_for(state.config.warrant_ttl_seconds))


# -- audit -----------------------------------------------------------------


@click.group(epilog=examples("hitlgate audit verify", "hitlgate audit export --out audit.jsonl"))
def audit() -> None:
    """The tamper-evident audit chain."""


@audit.command(
    "verify",
    epilog=examples(
        "hitlgate audit verify", "hitlgate audit verify --file audit.jsonl --jwks jwks.json --anchor copy.jsonl"
    ),
)
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
@click.option(
    "--approver-keys",
    "approver_keys_file",
    type=click.Path(dir_okay=False),
    help="With --file: also re-verify every signed vote and revocation (Ed25519 or passkey) against these "
    "public keys (`hitlgate approvers keys` output, kept where the database's writers cannot change it).",
)
@click.option(
    "--require-checkpoint",
    is_flag=True,
    help="With --file: fail (exit 3) when the export's last events are covered by no signed checkpoint.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Walk the store's chain from genesis, not from the checkpoint the last verify reached.",
)
@json_option
@pass_state
def audit_verify(
    state: CliState, jwks_file: str | None, export_file: str | None, anchor_files: tuple[str, ...],
    approver_keys_file: str | None, require_checkpoint: bool, full: bool,
) -> None:
    """Check every event and signed checkpoint; name the first bad event.

    The store is checked against its own checkpoints, the engine's audit
    anchor file and every --anchor, then its tables against the chain. With
    --file an export is checked instead, against its checkpoints and every
    --anchor; add --jwks to use only a trusted public JWKS (offline: no
    local keys or database).

    The store is verified incrementally: from the last anchored checkpoint
    a previous verify reached (recorded next to the audit anchor, outside
    the database). The stored event there must still have its signed hash
    and no event before it may be missing, which catches a rewrite of the
    chain through to it and any deletion before it. Any other edit before
    it (an event edited in place, its own hash recomputed or not; a
    checkpoint row deleted; table rows of a request with no event since) is
    found only by --full, which walks from genesis. Run --full periodically.

    An export with no event does not verify (code empty_export). Events
    after the export's last signed checkpoint (and --anchor's) are covered
    by no signature, so cutting them off cannot be detected: the report
    says "last N events not covered by a signed checkpoint" (a warning,
    exit 0, since an export's newest events are normally not yet
    checkpointed; run `hitlgate audit checkpoint` before exporting to cover
    them). With --require-checkpoint that is a failure (exit 3, code
    tail_not_checkpointed).

    With --approver-keys, every approval, rejection and revocation in the
    export is verified again, offline, against the approvers' public keys
    (Ed25519 keys and passkeys' COSE keys): the first one that does not
    verify fails (exit 3, code approval_unverified).

    Exit code 0 when the chain verifies, 3 when it does not (code
    audit_chain_broken, naming the first bad event), 2 when a --file,
    --jwks, --anchor or --approver-keys file cannot be read.
    """
    if approver_keys_file and not export_file:
        raise InputError("--approver-keys needs --file EXPORT (the store's votes are re-verified by `audit verify`)")
    keys_ = EngineKeyring.from_jwks(read_json_arg(jwks_file, "JWKS")) if jwks_file else None
    anchors = [cp for f in anchor_files for cp in load_external_anchor(Path(f))]
    if export_file:
        if keys_ is None:
            keys_ = _keyring(state).public_keys(include_expired=True)
        with _file_errors(export_file, "read"), open(export_file, "rb") as fh:
            # Line by line under limits.audit_line_bytes: an export may be large, a line may not.
            limits = current_limits()
            lines = LimitedLines(fh, max_line_bytes=limits.audit_line_bytes, what="audit export",
                                 label=export_file, limit_key="audit_line_bytes", max_json_depth=limits.max_depth)
            try:
                exported = read_export(cast("IO[str]", lines))
            except ValidationError as exc:
                # An export that cannot be read does not verify (exit 3), like a malformed line.
                raise AuditChainError(f"audit export {exc.problems[0]}", code=exc.code) from exc
        if not exported.events:
            raise AuditChainError(f"audit export {export_file} holds no audit event: it is empty or not an export",
                                  code="empty_export")
        report = verify_chain(exported.events, exported.checkpoints, keys_, anchors=anchors)
        signed_votes: int | None = None
        if approver_keys_file:
            from hitlgate.engine.approve.passkeys import ApproverKeys, verify_export_approvals

            approver_keys = ApproverKeys.from_dict(read_json_arg(approver_keys_file, "approver keys"))
            signed_votes = verify_export_approvals(exported.events, approver_keys)
        covered = max((cp.seq for cp in [*exported.checkpoints, *anchors]), default=0)
        head_seq = report.last_seq
        uncovered = ""
        if report.uncovered:
            uncovered = (f"; WARNING: last {report.uncovered} event(s) (after seq {report.covered_seq}) not covered "
                         "by a signed checkpoint: events cut off there would not be detected")
            if require_checkpoint:
                raise AuditChainError(f"audit export {export_file}{uncovered[len('; WARNING'):]}",
                                      code="tail_not_checkpointed")
        summary = {"ok": True, "events": report.events_checked, "checkpoints": report.checkpoints_verified,
                   "anchored": report.anchored, "head_seq": report.last_seq, "head_hash": report.head_hash,
                   "covered_seq": report.covered_seq, "uncovered_events": report.uncovered}
        votes = ""
        if signed_votes is not None:
            summary["signed_votes_verified"] = signed_votes
            votes = f", {signed_votes} signed vote(s) verified against the approver keys"
        text = (f"audit export OK: {report.events_checked} events, {report.checkpoints_verified} signed "
                f"checkpoint(s), {report.anchored} from --anchor files{votes}, "
                f"head #{report.last_seq} {report.head_hash}{uncovered}")
    else:
        with open_engine(state) as engine:
            r = engine.verify_audit(keys_, anchors=anchors, incremental=not full)
            with engine.store.read() as tx:
                last = tx.last_checkpoint()
            covered = max([0 if last is None else last.seq, *(cp.seq for cp in anchors)])
        summary, text, head_seq = r.to_dict(), r.describe(), r.head_seq
    if state.json:
        echo_json(summary)
    else:
        click.echo(text)
        _uncovered_tail_hint(head_seq, covered, bool(export_file))


def _uncovered_tail_hint(head_seq: int, covered: int, export: bool) -> None:
    """Say on stderr (text mode only) that the newest events are not under any signed checkpoint yet."""
    if head_seq <= covered:
        return
    span = f"#{head_seq}" if covered + 1 == head_seq else f"#{covered + 1}-#{head_seq}"
    where = "in this export " if export else ""
    # An export is a file: a checkpoint signed now reaches it only through a new export.
    then = " and export again" if export else ""
    click.echo(
        f"hint: no signed checkpoint {where}covers events {span} yet; run `hitlgate audit checkpoint` to sign "
        f"the current head{then} (a signed checkpoint is what makes rewriting those events detectable)",
        err=True,
    )


@audit.command(
    "export", epilog=examples("hitlgate audit export --out audit.jsonl", "hitlgate audit export --request ID")
)
@click.option("--out", type=OutFile(), help="File to write (default: stdout).")
@click.option("--request", "request_id", type=UTF8_TEXT, help="Only this request's events (not verifiable as a chain).")
@force_option
@json_option
@pass_state
def audit_export(state: CliState, out: str | None, request_id: str | None, force: bool) -> None:
    """Write the chain (events, then checkpoints) as JSON Lines.

    On stdout every line is one JSON document, with or without --json;
    with --out and --json a summary document is printed instead. Exit code
    0, 2 when --out exists (use --force), is a symbolic link or cannot be
    written, or when --request names a request with no events (not_found),
    or 3 when a stored event or checkpoint no longer reads as one (code
    audit_chain_broken, naming its seq).
    """
    with open_engine(state) as engine:
        if out:
            buf = io.StringIO()
            n, c = engine.export_audit(buf, request_id=request_id)
            write_file(out, buf.getvalue(), secret=False, overwrite=force, what="audit export")
            if state.json:
                echo_json({"out": out, "events": n, "checkpoints": c})
            else:
                click.echo(f"wrote {n} events and {c} checkpoint(s) to {out}", err=True)
        else:
            engine.export_audit(sys.stdout, request_id=request_id)


@audit.command("checkpoint", epilog=examples("hitlgate audit checkpoint", "hitlgate --json audit checkpoint"))
@json_option
@pass_state
def audit_checkpoint(state: CliState) -> None:
    """Sign the current chain head now. Exit code 0."""
    with open_engine(state) as engine:
        cp = engine.checkpoint()
    if state.json:
        echo_json(cp.to_dict())
    else:
        click.echo(f"checkpoint at #{cp.seq} {cp.head_hash} signed by {cp.kid}")


@audit.command("anchor", epilog=examples('hitlgate audit anchor --reinit --reason "disk replaced, no backup"'))
@click.option("--reinit", is_flag=True, help="Start a new audit anchor because the old one is lost.")
@click.option("--reason", type=UTF8_TEXT, help="Why the anchor was lost (recorded in the audit chain).")
@json_option
@pass_state
def audit_anchor(state: CliState, reinit: bool, reason: str | None) -> None:
    """Start a new audit anchor after the old one was lost: an audit event of its own.

    The engine refuses to write while the anchor is missing and the database
    holds checkpoints; restore the anchor from a backup if you can.
    Exit code 0, or 2 without --reinit --reason.
    """
    if not reinit:
        raise InputError("nothing to do: pass --reinit --reason TEXT to start a new audit anchor")
    if not reason or not reason.strip():
        raise InputError("--reinit needs --reason TEXT: say why the audit anchor was lost")
    with open_engine(state) as engine:
        cp = engine.reinit_anchor(reason)
        path = str(engine.anchor.path)
    if state.json:
        echo_json({"anchor": path, "checkpoint": cp.to_dict()})
    else:
        click.echo(f"new audit anchor {path} started at #{cp.seq} {cp.head_hash}")


def register(cli: click.Group) -> None:
    """Add the workflow commands to the root group."""
    for cmd in (propose, requests, show, _vote_command("approve"), _vote_command("reject"), wait, warrant, outcome,
                verify, revoke, expire, keys, audit):
        cli.add_command(cmd)

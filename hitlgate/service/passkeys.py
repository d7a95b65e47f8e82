"""Passkey routes of the console: enrolment, login sessions and passkey-signed votes (under ``/ui``).

==============================================  ===================================================
``GET /ui/enroll/{token}``                      the enrolment page of a one-time link
``POST /ui/api/enroll/options``                 ``{token}`` -> ``{publicKey}`` creation options
``POST /ui/api/enroll``                         ``{token, credential}`` -> ``{approver, credential_id}``
``POST /ui/api/login/options``                  ``{approver?}`` -> ``{publicKey}`` request options
``POST /ui/api/login``                          an assertion -> session cookie, ``{approver}``
``POST /ui/api/logout``                         clears the session cookie
``POST /ui/api/requests/{id}/vote/options``     ``{verdict, reason?}`` -> ``{statement, canonical, publicKey}``
``POST /ui/api/requests/{id}/vote``             ``{statement, credential}`` -> the request view
==============================================  ===================================================

Every ``POST`` here is checked, in this order, before its body is read:

1. the ``Origin`` header equals ``server.public_url``'s origin (else 403
   ``csrf``): a page on another site cannot drive these routes;
2. for the routes a session cookie authenticates (logout, vote options,
   vote): the header ``X-Hitlgate-CSRF: 1`` is present (else 403 ``csrf``),
   which a cross-site form cannot send, and the session cookie is valid
   (else 401 ``unauthenticated``).

A refusal of step 1 or 2, and a request without a session cookie, spends
nothing: a page on another site can make a browser send those, and they
guess at no secret (see :mod:`hitlgate.service.auth`). A credential that is
presented and fails (a forged, altered, expired or logged-out session
cookie, a refused login assertion or enrolment) spends one token of the
service's per-address bucket, and once that is empty is refused with 429
``rate_limited``; a valid one is checked first and served regardless.

A session (:func:`session_approver`) is the cookie ``hitlgate_session``:
``v1.<approver and passkey tag>.<expiry>.<HMAC-SHA256>`` under a 256-bit secret kept beside
the engine keys (``session.key``, mode 0600, created on first use), HttpOnly,
``SameSite=Strict``, and ``Secure`` unless the console runs on plain http
on a loopback host (exactly ``localhost``, ``127.0.0.1`` or ``::1``). A
forged, altered or expired cookie, one naming someone no longer in the inventory, or one whose passkey (the
tag: a hash of the credential id it signed in with) was revoked since, is refused. A session
only says who is looking: every vote is still a passkey signature over the
exact statement, checked by the engine like any other vote.

Pages carry the headers of :data:`UI_HEADERS` (a CSP without inline
script, ``nosniff``, no referrer); JSON answers are ``no-store``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from hitlgate.engine.approve._webauthn import Assertion, challenge_for
from hitlgate.engine.approve.approvals import MAX_REASON_LENGTH, SignedStatement, Statement, check_reason
from hitlgate.engine.approve.passkeys import EnrolmentError, RelyingParty
from hitlgate.engine.approve.workflow import same_person
from hitlgate.engine.keys.apikeys import ApiKeyError
from hitlgate.engine.keys.keyring import b64url_decode, b64url_encode
from hitlgate.errors import ApprovalError, HitlgateError, InputError, ValidationError
from hitlgate.service.errors import Forbidden

if TYPE_CHECKING:
    from hitlgate.engine.approve.workflow import Engine
    from hitlgate.service.app import Service

log = logging.getLogger(__name__)

SESSION_COOKIE = "hitlgate_session"
CSRF_HEADER = "X-Hitlgate-CSRF"
SESSION_KEY_FILE = "session.key"
_SESSION_VERSION = "v1"

#: Security headers of every console page (Contract D): no inline script, no framing, no sniffing, no referrer.
UI_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
#: The enrolment page's URL carries its one-time token: no cache may keep it, and no other site may frame it.
_PAGE_HEADERS = {**UI_HEADERS, "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
_JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

#: A passkey vote signed longer ago than this is refused: the console signs a statement dated when it was made.
MAX_STATEMENT_AGE = timedelta(minutes=10)

_STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


class SessionError(ApiKeyError):
    """No valid console session: missing, forged, altered or expired cookie (HTTP 401, code ``unauthenticated``)."""


class CsrfError(Forbidden):
    """A cookie-authenticated POST without the CSRF header, or from another origin (HTTP 403, code ``csrf``)."""

    code = "csrf"


# -- sessions -----------------------------------------------------------------


def _service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def session_secret(key_dir: Path) -> bytes:
    """The session HMAC secret beside the engine keys (``session.key``, 0600), created on first use."""
    from hitlgate.engine._files import write_file

    path = Path(key_dir) / SESSION_KEY_FILE
    if not path.exists():
        try:
            write_file(path, secrets.token_bytes(32), secret=True, what="console session key")
        except InputError as exc:
            if exc.code != "file_exists":  # Another replica created it first: use theirs.
                raise
    st = path.lstat()
    if not os.path.isfile(path) or path.is_symlink() or st.st_mode & 0o077:
        raise ApprovalError(f"the console session key {path} must be a regular file readable by its owner only "
                            "(chmod 600)", code="session_key_unsafe")
    data = path.read_bytes()
    if len(data) != 32:
        raise ApprovalError(f"the console session key {path} is not 32 bytes; delete it to make a new one "
                            "(every session ends)", code="session_key_unsafe")
    return data


def _mac(secret: bytes, body: str) -> str:
    return b64url_encode(hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest())


def _passkey_tag(credential_id: str) -> str:
    # A short hash, not the id itself: a credential id may be over 1,000 characters.
    return hashlib.sha256(credential_id.encode("ascii")).hexdigest()[:32]


def make_session(secret: bytes, approver: str, expires: int, credential_id: str) -> str:
    """A session cookie value naming ``approver`` and the passkey they signed in with, until unix time ``expires``."""
    # A random part makes every session's cookie distinct, so ending one (logout) never ends another
    # signed in the same second with the same passkey.
    who = f"{approver}\x00{_passkey_tag(credential_id)}\x00{secrets.token_hex(8)}"
    body = f"{_SESSION_VERSION}.{b64url_encode(who.encode('utf-8'))}.{expires}"
    return f"{body}.{_mac(secret, body)}"


def read_session(secret: bytes, value: str | None, now: float) -> tuple[str, str]:
    """The approver a session cookie names and its passkey's tag; :class:`SessionError` if missing, forged, expired."""
    if not value:
        raise SessionError("no console session: log in with your passkey")
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != _SESSION_VERSION or not parts[2].isdigit() or len(value) > 1024:
        raise SessionError("the console session cookie is malformed: log in again")
    body = ".".join(parts[:3])
    if not hmac.compare_digest(_mac(secret, body).encode(), parts[3].encode()):
        raise SessionError("the console session cookie is forged or altered: log in again")
    if int(parts[2]) <= now:
        raise SessionError("the console session expired: log in again", code="session_expired")
    try:
        fields = b64url_decode(parts[1]).decode("utf-8").split("\x00")
    except (ValueError, UnicodeDecodeError):
        raise SessionError("the console session cookie is malformed: log in again") from None
    if len(fields) != 3:
        raise SessionError("the console session cookie is malformed: log in again")
    return fields[0], fields[1]


def _session_id(value: str) -> str:
    """The key a logged-out session is recorded under: SHA-256 of the whole cookie value."""
    return hashlib.sha256(value.encode("ascii", "replace")).hexdigest()


def _logged_out(engine: Engine, value: str) -> bool:
    import sqlalchemy as sa

    from hitlgate.engine.ledger import _store_schema as t

    row = engine.store.read_first(sa.select(t.console_logouts.c.session)
                                  .where(t.console_logouts.c.session == _session_id(value)))
    return row is not None


def end_session(engine: Engine, value: str, approver: str) -> None:
    """Record the session cookie ``value`` as ended until it would expire; sweep sessions past their expiry."""
    from hitlgate.engine.ledger import _store_schema as t

    expires = datetime.fromtimestamp(int(value.split(".")[2]), UTC)
    now = engine.now()
    c = t.console_logouts.c
    with engine.store.write() as tx:
        tx.conn.execute(t.console_logouts.delete().where(c.expires_at <= now))
        if tx.conn.execute(t.console_logouts.select().where(c.session == _session_id(value))).first() is None:
            tx.conn.execute(t.console_logouts.insert().values(session=_session_id(value), approver=approver,
                                                              expires_at=expires))


def session_approver(request: Request) -> str:
    """The approver whose console session this request carries (Contract C).

    Raises :class:`SessionError` (401) when the cookie is missing, forged,
    altered, expired or logged out, names someone no longer in the inventory, or the
    passkey it was signed in with has been revoked since (a stolen laptop's
    session ends with its passkey).
    """
    svc = _service(request)
    engine = svc.engine
    value = request.cookies.get(SESSION_COOKIE)
    name, tag = read_session(session_secret(engine.config.key_dir), value, engine.now().timestamp())
    if value is not None and _logged_out(engine, value):
        raise SessionError("this console session was logged out: log in again")
    if name not in engine.approvers.all():
        raise SessionError(f"{name[:60]} is no longer a registered approver: the session ends")
    if not any(r.revoked_at is None and hmac.compare_digest(_passkey_tag(r.key.credential_id), tag)
               for r in engine.passkeys.list(name)):
        raise SessionError("the passkey this session was signed in with is revoked: the session ends; "
                           "log in with another passkey")
    return name


# -- the checks every POST makes ------------------------------------------------


def _relying_party(svc: Service) -> RelyingParty:
    server = svc.engine.config.server
    return RelyingParty.from_settings(server.public_url, server.rp_id)


def _check_origin(request: Request, svc: Service, *, cookie: bool) -> RelyingParty:
    # These refusals spend nothing from the address's bucket: a page on any site can make a
    # browser send a wrong Origin or leave the CSRF header out, so if they counted, a page
    # opened behind the same NAT could lock the approvers behind it out of the console.
    rp = _relying_party(svc)
    if request.headers.get("origin") != rp.origin:
        raise CsrfError(f"refused: the Origin header must be {rp.origin} (the console's own pages)")
    if cookie and request.headers.get(CSRF_HEADER) != "1":
        raise CsrfError(f"refused: the {CSRF_HEADER}: 1 header is missing (the console's own script sends it)")
    return rp


def _failed_credential(request: Request, svc: Service) -> None:
    """Spend from the client address's bucket for a credential that failed; 429 once it is empty."""
    from hitlgate.service.app import client_address

    svc.auth_failures.take(client_address(request), "this client address after refused console requests")


def _session(request: Request, svc: Service) -> str:
    try:
        return session_approver(request)
    except SessionError:
        if request.cookies.get(SESSION_COOKIE):  # No cookie at all guesses at nothing: a plain 401.
            _failed_credential(request, svc)
        raise


def _json(doc: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(doc, status_code=status, headers=_JSON_HEADERS)


#: The hosts of a console on this machine only, whose plain-http cookie need not be ``Secure``.
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _secure(rp: RelyingParty) -> bool:
    # A browser drops a Secure cookie on plain http, so a console on the
    # loopback address (development, tests) gets one without; anywhere else
    # the cookie only ever travels over TLS. The origin is parsed, not
    # prefix-matched: http://localhost.example.com and http://localhost:8080@evil
    # begin like a loopback origin but name other hosts.
    try:
        parts = urlsplit(rp.origin)
        host = parts.hostname
    except ValueError:
        return True  # Not parseable: not provably local, so Secure.
    return not (parts.scheme == "http" and host in _LOOPBACK_HOSTS)


async def _object(request: Request, svc: Service, what: str, *, empty_ok: bool = False) -> dict[str, Any]:
    limit = svc.engine.config.limits.approval_bytes
    data = await svc.raw_body(request, what, limit)
    if not data and empty_ok:
        return {}
    doc = await svc.run(svc.parse, data, what)
    if not isinstance(doc, dict):
        raise InputError(f"{what}: must be a JSON object", code="invalid_request")
    return doc


# -- enrolment ------------------------------------------------------------------

# The console's stylesheet and header, so the first page an approver sees
# looks like the console they will sign in to afterwards.
_ENROL_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Enrol a passkey · hitlgate</title>
<link rel="stylesheet" href="{stylesheet}">
<script src="/ui/static/enroll.js" defer></script>
</head>
<body>
<header class="top">
  <a class="brand" href="/ui">hitlgate</a>
  <span class="subtitle">approvers' console</span>
</header>
<main>
<section class="card narrow">
<h1>Enrol a passkey</h1>
{body}
</section>
</main>
</body>
</html>
"""


def _enrol_page(body: str, status: int = 200) -> HTMLResponse:
    # Imported here: the console imports this module for its session check.
    from hitlgate.service.console import static_url

    page = _ENROL_PAGE.format(stylesheet=static_url("console.css"), body=body)
    return HTMLResponse(page, status_code=status, headers=_PAGE_HEADERS)


@router.get("/ui/enroll/{token}")
async def enroll_page(request: Request, token: str) -> HTMLResponse:
    """The enrolment page of a one-time link: names the approver and creates the passkey from the browser."""
    svc = _service(request)
    try:
        enrolment = await svc.run(svc.engine.passkeys.enrolment, token)
    except EnrolmentError as exc:
        body = f'<p id="status" class="alert" role="alert">{html.escape(exc.message)}</p>'
        return _enrol_page(body, status=403)
    name = html.escape(enrolment.approver)
    body = (
        f'<p>This link enrols a passkey for approver <strong id="approver">{name}</strong>. '
        "It works once, and expires at "
        f'<time datetime="{enrolment.expires_at.isoformat()}">{enrolment.expires_at:%Y-%m-%d %H:%M} UTC</time>.</p>\n'
        "<p>Your passkey will sign every approval you give: the exact request and action, never a summary.</p>\n"
        '<button id="enroll" class="primary" type="button">Create passkey</button>\n'
        '<p id="status" class="status" role="status" aria-live="polite"></p>\n'
        '<p id="next" hidden>Next: <a href="/ui/login">sign in to the console</a> with this passkey '
        "to see the requests that wait for you.</p>"
    )
    return _enrol_page(body)


@router.get("/ui/static/enroll.js")
async def enroll_script() -> FileResponse:
    """The enrolment page's script (a file: the CSP allows no inline script)."""
    return FileResponse(_STATIC / "enroll.js", media_type="text/javascript", headers=UI_HEADERS)


@router.post("/ui/api/enroll/options")
async def enroll_options(request: Request) -> JSONResponse:
    """Creation options for the enrolment of ``{token}`` (the challenge is stored, single use)."""
    svc = _service(request)
    _check_origin(request, svc, cookie=False)
    doc = await _object(request, svc, "enrolment options request")
    token = _string(doc, "token")
    return _json({"publicKey": await svc.run(svc.engine.passkeys.registration_options, token)})


@router.post("/ui/api/enroll")
async def enroll(request: Request) -> JSONResponse:
    """Verify ``{token, credential}`` and bind the passkey to the link's approver."""
    svc = _service(request)
    _check_origin(request, svc, cookie=False)
    doc = await _object(request, svc, "enrolment")
    token = _string(doc, "token")
    credential = doc.get("credential")
    if not isinstance(credential, dict):
        raise InputError("credential: required, the JSON of the created PublicKeyCredential",
                         code="invalid_credential")
    try:
        key = await svc.run(svc.engine.passkeys.enrol, token, credential)
    except HitlgateError:
        _failed_credential(request, svc)
        raise
    return _json({"approver": key.approver, "credential_id": key.credential_id})


# -- login ----------------------------------------------------------------------


@router.post("/ui/api/login/options")
async def login_options(request: Request) -> JSONResponse:
    """Request options for a console login: a discoverable-credential request (the authenticator offers its passkeys).

    Anyone may ask, so the options name nobody: no approver's credential ids
    are listed (a body naming an approver is refused), and each client address
    spends from a token bucket (``server.rate_per_second``/``rate_burst``),
    since every call stores a challenge.
    """
    svc = _service(request)
    _check_origin(request, svc, cookie=False)
    address = request.client.host if request.client is not None else "unknown"
    svc.limiter.take(f"login-options:{address}", "login options from this client address")
    doc = await _object(request, svc, "login options request", empty_ok=True)
    if doc:
        raise InputError(f"login options request: unexpected field(s) {', '.join(sorted(doc))[:120]}; send {{}} "
                         "(the passkey names its approver)", code="invalid_request")
    return _json({"publicKey": await svc.run(svc.engine.passkeys.login_options, None)})


@router.post("/ui/api/login")
async def login(request: Request) -> JSONResponse:
    """Verify a login assertion; set the session cookie; ``{approver}``."""
    svc = _service(request)
    rp = _check_origin(request, svc, cookie=False)
    doc = await _object(request, svc, "login")
    credential = doc.get("credential", doc)
    try:
        approver = await svc.run(svc.engine.passkeys.login, credential)
        # Verified by the login just made: the session is tied to this passkey.
        credential_id = Assertion.from_browser(credential).credential_id
    except HitlgateError:
        _failed_credential(request, svc)
        raise
    minutes = svc.engine.config.server.session_minutes
    expires = int(svc.engine.now().timestamp()) + 60 * minutes
    secret = await svc.run(session_secret, svc.engine.config.key_dir)
    response = _json({"approver": approver})
    response.set_cookie(SESSION_COOKIE, make_session(secret, approver, expires, credential_id), max_age=60 * minutes,
                        path="/ui", httponly=True, samesite="strict", secure=_secure(rp))
    return response


@router.post("/ui/api/logout")
async def logout(request: Request) -> JSONResponse:
    """End the session: recorded as ended in the store (so a copy of the cookie is refused too), cookie cleared."""
    svc = _service(request)
    rp = _check_origin(request, svc, cookie=True)
    value = request.cookies.get(SESSION_COOKIE)
    if value:
        engine = svc.engine

        def signed_approver() -> str | None:
            # A cookie we signed that has not expired is ended, even while its approver or passkey is refused
            # (an approver taken out of the inventory): a refusal lifted later (the approver put back) must
            # not bring a session its approver logged out of back to life.
            try:
                return read_session(session_secret(engine.config.key_dir), value, engine.now().timestamp())[0]
            except SessionError:
                return None  # Expired or forged: nothing to end; the cookie is cleared below.

        approver = await svc.run(signed_approver)
        if approver is not None:
            await svc.run(end_session, engine, value, approver)
    response = _json({"ok": True})
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict", secure=_secure(rp))
    return response


# -- votes ------------------------------------------------------------------------


@router.post("/ui/api/requests/{request_id}/vote/options")
async def vote_options(request: Request, request_id: str) -> JSONResponse:
    """The statement to sign and request options whose challenge is SHA-256 of its canonical bytes.

    ``reason`` is optional for an approval and needed for a rejection; when
    given it is part of the statement, so the passkey signs it and the vote
    carries it (refused, 400 ``invalid_reason``, on the terms of every vote's
    reason: :func:`~hitlgate.engine.approve.approvals.check_reason`).
    """
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor, UserVerificationRequirement

    svc = _service(request)
    rp = _check_origin(request, svc, cookie=True)
    approver = await svc.run(_session, request, svc)  # Reads the store (passkeys, logouts): off the loop.
    doc = await _object(request, svc, "vote options request")
    unknown = sorted(set(doc) - {"verdict", "reason"}, key=str)
    if unknown:
        raise InputError(f"vote options: unknown field(s) {', '.join(map(str, unknown))[:100]}",
                         code="invalid_request")
    verdict = doc.get("verdict")
    if verdict not in ("approve", "reject"):
        raise InputError("verdict: required, approve or reject", code="invalid_request")
    raw = doc.get("reason") or ""
    if not isinstance(raw, str):
        raise InputError("reason: must be a string", code="invalid_request")
    try:
        # The rule the statement itself enforces, checked on the reason as typed (before the
        # surrounding spaces go), so a control character is refused in words, never stripped
        # away unseen; an approval's reason is optional, and signed when there is one.
        check_reason(raw)
    except ValidationError as exc:
        length = f" (this one has {len(raw)}): shorten it" if len(raw) > MAX_REASON_LENGTH else \
            ": remove it (a tab, an escape sequence or a direction mark, often pasted)"
        raise InputError("; ".join(exc.problems) + length, code="invalid_reason", problems=exc.problems) from None
    reason = raw.strip()
    if verdict == "reject" and not reason:
        raise InputError("a rejection needs a reason: say why, for the requester and the audit trail",
                         code="reason_required")
    req = await svc.run(svc.engine.get, _path_id(request_id))
    if same_person(approver, req.requester):
        raise ApprovalError(f"{approver} proposed request {req.id} and cannot also vote on it", code="self_approval")
    statement = Statement(req.id, req.action_digest, verdict, approver, svc.engine.now(), reason)
    canonical = statement.canonical()
    keys = [r.key.credential_id for r in await svc.run(svc.engine.passkeys.list, approver) if r.revoked_at is None]
    options = generate_authentication_options(
        rp_id=rp.rp_id, challenge=challenge_for(canonical),
        allow_credentials=[PublicKeyCredentialDescriptor(id=b64url_decode(k)) for k in keys],
        user_verification=UserVerificationRequirement.REQUIRED)
    return _json({"statement": statement.to_dict(), "canonical": canonical.decode("utf-8"),
                  "publicKey": json.loads(options_to_json(options))})


@router.post("/ui/api/requests/{request_id}/vote")
async def vote(request: Request, request_id: str) -> JSONResponse:
    """Submit ``{statement, credential}``: the passkey-signed vote, checked by the engine like every vote."""
    svc = _service(request)
    _check_origin(request, svc, cookie=True)
    approver = await svc.run(_session, request, svc)  # Reads the store (passkeys, logouts): off the loop.
    doc = await _object(request, svc, "passkey vote")
    unknown = sorted(set(doc) - {"statement", "credential"}, key=str)
    if unknown:
        raise InputError(f"passkey vote: unknown field(s) {', '.join(map(str, unknown))[:100]}",
                         code="invalid_request")
    statement = Statement.from_dict(doc.get("statement"))
    request_id = _path_id(request_id)
    if statement.request_id != request_id:
        raise InputError(f"the statement is for request {statement.request_id}, not {request_id}",
                         code="request_mismatch")
    if statement.approver != approver:
        raise Forbidden(f"the statement is by {statement.approver[:60]}, but this session is {approver}'s",
                        code="approver_mismatch")
    now = svc.engine.now()
    if statement.at < now - MAX_STATEMENT_AGE:
        raise ApprovalError(f"the statement was made at {statement.at.isoformat()}, more than "
                            f"{int(MAX_STATEMENT_AGE.total_seconds() // 60)} minutes ago: sign again",
                            code="statement_stale")
    signed = SignedStatement(statement, Assertion.from_browser(doc.get("credential")).to_dict())
    submit = svc.engine.approve if statement.verdict == "approve" else svc.engine.reject
    req = await svc.run(submit, signed)
    if req.status == "granted":
        svc.metrics.approval_latency.observe((req.updated_at - req.created_at).total_seconds())
    return _json(await svc.run(svc.view, req))


def _string(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise InputError(f"{key}: required, a string", code="invalid_request")
    return value


def _path_id(value: str) -> str:
    from hitlgate.service.app import _path_id as check

    return check(value)

"""The approvers' console: server-rendered pages under ``/ui`` over the same engine as the HTTP API.

Pages (each needs a console session, see :func:`hitlgate.service.passkeys.session_approver`;
without one a page redirects to the login page):

=================================  ==========================================================
``GET /ui``                        the pending list: count, filters (tier, team, target), newest first;
                                   each query parameter at most once (as the HTTP API), a cursor only as printed
``GET /ui/requests/{id}``          one request: what runs, why, who asked, quorum, votes, the bound bytes
``GET /ui/login``                  sign in with a passkey (no session needed)
``GET /ui/static/{name}``          the console's CSS and JavaScript (a fixed set of files)
=================================  ==========================================================

What the console guarantees, in the order the code makes it true:

1. **No page without a session.** Every page but the login page asks
   :func:`~hitlgate.service.passkeys.session_approver` first; a missing or
   invalid session redirects to ``/ui/login`` (a ``next`` that is not a
   console path is dropped, so the login page cannot be made to send a
   signed-in approver elsewhere).
2. **The bytes shown are the bytes bound.** The request page shows the
   action's canonical JSON from :func:`hitlgate.engine.decide.proposal.action_canonical`,
   the function the engine hashes, and recomputes its SHA-256 against the
   stored digest; a mismatch (a tampered row) is shown as such and the
   vote buttons are not offered.
3. **Votes are signed in the browser, verified by the server.** The
   console's pages never take a vote: ``static/console.js`` asks the
   passkey routes (Contract C) for the statement to sign, checks that the
   statement names this page's request and digest and that the challenge
   is the SHA-256 of the canonical statement, then signs with the passkey
   (user verification required) and submits the assertion. The server
   (``hitlgate.service.passkeys``) verifies everything again.
4. **Pages cannot run injected script.** Templates autoescape; every page
   is sent with a Content-Security-Policy allowing scripts only from this
   origin (no inline script anywhere), ``nosniff``, no referrer, no framing.
5. **Listings read the store's indexes, never every request.** The pending
   list is one keyset page of the ``(status, created_at, id)`` index, the
   filters narrowing it in SQL; the team filter (teams live in the stored
   decision, not in a column) confirms each row in Python and stops after
   :data:`TEAM_SCAN_LIMIT` candidates, offering a cursor to search further.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hitlgate.engine._time import format_time
from hitlgate.engine.approve import lifecycle
from hitlgate.engine.approve.quorum import QuorumProgress, assess, require_eligible
from hitlgate.engine.approve.workflow import Engine, same_person
from hitlgate.engine.decide.inventory import Approver
from hitlgate.engine.decide.proposal import action_canonical
from hitlgate.engine.ledger.store import ListCursor, ListFilters
from hitlgate.engine.ledger.store import Request as StoredRequest
from hitlgate.errors import ApprovalError, HitlgateError, InputError, NotFoundError
from hitlgate.service._query import cursor as parse_cursor
from hitlgate.service._query import single_valued
from hitlgate.service.errors import status_of
from hitlgate.service.passkeys import session_approver

if TYPE_CHECKING:
    from hitlgate.service.app import Service

#: Requests on one page of the pending list.
PAGE_SIZE = 50

#: The most requests one team-filtered page reads before it stops and offers a cursor to search on.
#: A search for a team no request names reads all of them: with 2,000 it took up to 113 ms on
#: PostgreSQL (bench_console, 10,000 pending), over the console's 100 ms budget; 1,000 halves it.
TEAM_SCAN_LIMIT = 1000

#: The headers of every console response (Contract D of issue 12).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Pages show who is waiting for whom: no shared cache may keep them.
    "Cache-Control": "no-store",
}

_TIER_WORDS = {
    "auto_allow": "auto-allow", "single_approval": "single approval",
    "dual_approval": "dual approval", "deny": "deny",
}

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("hitlgate.service", "templates"),
    # Autoescape everything: request fields (target, justification, parameters)
    # are written by agents, which a prompt injection may steer.
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


#: The content type of each kind of static file (fixed here, not read from the machine's MIME tables:
#: with ``nosniff`` a script served under another type would not run).
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def _load_static() -> dict[str, tuple[bytes, str]]:
    """The console's static files, read once: name -> (bytes, content type). Nothing else is served."""
    out: dict[str, tuple[bytes, str]] = {}
    folder = resources.files("hitlgate.service") / "static"
    for entry in folder.iterdir():
        kind = _STATIC_TYPES.get(entry.name[entry.name.rfind("."):]) if "." in entry.name else None
        if entry.is_file() and kind is not None:
            out[entry.name] = (entry.read_bytes(), kind)
    return out


_STATIC = _load_static()
#: A short content hash per static file, appended to its URL so a new release is never served from a stale cache.
_STATIC_VERSION = {name: hashlib.sha256(data).hexdigest()[:12] for name, (data, _kind) in _STATIC.items()}


def static_url(name: str) -> str:
    """The versioned URL of the console's static file ``name`` (also used by the enrolment page)."""
    return f"/ui/static/{name}?v={_STATIC_VERSION[name]}"


_templates.globals["static"] = static_url


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _login_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?{urlencode({'next': here})}", status_code=303, headers=SECURITY_HEADERS)


def safe_next(value: str | None) -> str:
    """Where to go after login: a console path, or the pending list (never another site, never ``//host``)."""
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value \
            and value.isprintable() and len(value) <= 500:
        return value
    return "/ui"


def left(until: datetime, now: datetime) -> str:
    """Time left until ``until`` in words (``12 min 5 s``, ``2 h 3 min``), or ``expired``."""
    seconds = int((until - now).total_seconds())
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def teams_of(req: StoredRequest) -> frozenset[str]:
    """The teams a request's quorum names (whose members can fill a slot)."""
    return frozenset(team for slot in req.decision.quorum.slots for team in slot.teams)


@dataclass(frozen=True)
class Row:
    """One line of the pending list."""

    id: str
    created_at: str
    action_type: str
    target: str
    tier: str
    risk_factors: tuple[str, ...]
    requester: str
    left: str
    expires_at: str
    quorum: str


@dataclass(frozen=True)
class PendingPage:
    """A page of the pending list and how to continue it."""

    rows: tuple[Row, ...]
    next_cursor: str | None
    scanned: int
    scan_stopped: bool


def pending_page(engine: Engine, *, tier: str | None, team: str | None, target: str | None,
                 cursor: ListCursor | None, limit: int = PAGE_SIZE, scan_limit: int = TEAM_SCAN_LIMIT) -> PendingPage:
    """One page of pending requests, newest first, read through the store's indexed listing.

    Tier, target and team narrow the index walk in SQL. The team is kept in
    each request's stored decision, which the database matches only as text
    (a superset), so each row is checked against its quorum here, and a
    team search reads at most the next ``scan_limit`` pending requests: when
    that window holds fewer than ``limit`` matches, the page says it stopped
    and its cursor continues the search after the window.
    """
    filters = ListFilters(tier=tier, target=target, team=team)
    registry = engine.approvers.all()
    now = engine.now()
    within = scan_limit if team is not None else None
    batch = engine.list(lifecycle.PENDING, limit=limit, before=cursor, filters=filters, within=within)
    kept = [req for req in batch if team is None or team in teams_of(req)]
    next_cursor: str | None = None
    stopped = False
    scanned = len(batch)
    if len(batch) == limit:
        next_cursor = ListCursor.after(batch[-1]).encode()
    elif within is not None:
        mark = engine.listing_mark(lifecycle.PENDING, within, before=cursor)
        if mark is not None:
            next_cursor, stopped, scanned = mark.encode(), True, within
    # Most rows share a quorum and have the same (often no) votes: each report is worked out once per page.
    reports: dict[tuple[Any, tuple[str, ...]], str] = {}
    rows = tuple(_row(req, registry, now, reports) for req in kept)
    return PendingPage(rows=rows, next_cursor=next_cursor, scanned=scanned, scan_stopped=stopped)


def _progress(req: StoredRequest, registry: Mapping[str, Approver]) -> QuorumProgress:
    """The listing's quorum report: votes as stored (the request page re-verifies each signature)."""
    return assess(req.decision.quorum, [registry[v.approver] for v in req.approvals if v.approver in registry])


def _row(req: StoredRequest, registry: Mapping[str, Approver], now: datetime,
         reports: dict[tuple[Any, tuple[str, ...]], str]) -> Row:
    key = (req.decision.quorum, tuple(v.approver for v in req.approvals))
    quorum = reports.get(key)
    if quorum is None:
        quorum = reports[key] = _progress(req, registry).describe()
    return Row(
        id=req.id, created_at=when(req.created_at), action_type=str(req.action.get("type", "")),
        target=str(req.action.get("target", "")), tier=req.tier, risk_factors=req.decision.risk_factors,
        requester=req.requester, left=left(req.expires_at, now), expires_at=format_time(req.expires_at),
        quorum=quorum,
    )


@dataclass(frozen=True)
class VoteView:
    """A vote as the request page lists it."""

    approver: str
    verdict: str
    signed_at: str
    recorded_at: str
    reason: str
    kind: str
    counted: str


def request_context(engine: Engine, request_id: str, approver: str) -> dict[str, Any]:
    """Everything the request page shows about ``request_id`` to ``approver``."""
    req = engine.get(request_id)
    now = engine.now()
    canonical = action_canonical(req.action)
    digest = "sha256:" + hashlib.sha256(canonical).hexdigest()
    progress: QuorumProgress | None = None
    unverified: dict[str, str] = {}
    if req.decision.needs_approval:
        progress, unverified = engine.checked_progress(request_id)
    registry = engine.approvers.all()
    votes = tuple(
        VoteView(
            approver=v.approver, verdict=v.verdict, signed_at=when(v.signed_at),
            recorded_at=format_time(v.recorded_at), reason=_reason(v.statement),
            kind=_signature_kind(v.statement),
            counted=("not counted: " + unverified[v.approver]) if v.approver in unverified else
            ("counted" if progress is not None and v.approver in progress.counted else
             ("" if v.verdict == "reject" else "not counted")),
        )
        for v in req.votes
    )
    proposal = req.proposal
    you = registry.get(approver)
    return {
        "req": req,
        "action": req.action,
        "parameters": _pairs(req.action.get("parameters", {})),
        "tier_words": _TIER_WORDS.get(req.tier, req.tier),
        "decision": req.decision,
        "blast_workloads": tuple(req.decision.blast_radius.get("workloads", ())),
        "blast_partners": tuple(req.decision.blast_radius.get("partners", ())),
        "justification": str(proposal.get("justification", "")),
        "incident": proposal.get("incident"),
        "confidence": proposal.get("confidence"),
        "requester_kind": str(proposal.get("requester", {}).get("kind", "")),
        "left": left(req.expires_at, now) if req.status == lifecycle.PENDING else None,
        "expires_at": format_time(req.expires_at),
        "created_at": when(req.created_at),
        "expires_words": when(req.expires_at),
        "progress": progress,
        "votes": votes,
        "canonical": canonical.decode("utf-8"),
        "digest": req.action_digest,
        "digest_ok": digest == req.action_digest,
        "can_vote": _can_vote(req, you, approver, digest == req.action_digest),
    }


def _reason(signed: Mapping[str, Any]) -> str:
    """The reason inside a stored vote's signed statement (``{"statement": {..., "reason"}, "signature"}``)."""
    inner = signed.get("statement", signed)
    return str(inner.get("reason", "") or "") if isinstance(inner, Mapping) else ""


def when(at: datetime) -> str:
    """A time for people: ``2026-01-31 12:00:05 UTC`` (the data attributes keep the full form)."""
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _signature_kind(statement: Mapping[str, Any]) -> str:
    signature = statement.get("signature")
    if isinstance(signature, Mapping) and signature.get("type") == "webauthn":
        return "passkey"
    return "key file"


def _pairs(parameters: Any) -> tuple[tuple[str, str], ...]:
    """Top-level parameters as (name, short value) pairs; the canonical JSON shows them whole, to the byte."""
    if not isinstance(parameters, Mapping):
        return ()
    out = []
    for name, value in parameters.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        out.append((str(name), text if len(text) <= 200 else text[:199] + "…"))
    return tuple(out)


def _can_vote(req: StoredRequest, you: Approver | None, name: str, digest_ok: bool) -> str | None:
    """``None`` when ``name`` may vote on ``req`` now, else why not (in words, shown instead of the buttons)."""
    if req.status != lifecycle.PENDING:
        return f"This request is {req.status.replace('_', ' ')}; it takes no more votes."
    if not digest_ok:
        return "The stored action does not match its digest; nobody can vote on it. Tell the administrators."
    if same_person(name, req.requester):
        return f"You ({name}) proposed this request, so you cannot vote on it."
    if any(v.approver == name for v in req.votes):
        return "You have voted on this request; a vote cannot be changed."
    if you is None:
        return f"{name} is not a registered approver in the inventory."
    try:
        # The engine's own eligibility rule, asked without raising past here: the page says why, the
        # vote route enforces it.
        require_eligible(req.decision.quorum, you)
    except ApprovalError as exc:
        return f"{exc}."
    return None


def _error(status: int, title: str, message: str, approver: str | None) -> HTMLResponse:
    return _page("error.html", status, title=title, message=message, approver=approver)


router = APIRouter(prefix="/ui", include_in_schema=False)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.service.engine
    return engine


async def _session(request: Request) -> str | None:
    """The signed-in approver, or None (the caller redirects to the login page)."""
    svc: Service = request.app.state.service
    try:
        # On a worker thread: checking the cookie reads the session key file and the inventory.
        return await svc.run(session_approver, request)
    except HitlgateError as exc:
        if status_of(exc) == 401:
            return None
        raise


def _query(params: Mapping[str, str], name: str, limit: int = 200) -> str | None:
    value = params.get(name)
    if value is None or value.strip() == "":
        return None
    if len(value) > limit or not value.isprintable():
        raise InputError(f"{name}: at most {limit} printable characters", code="invalid_query")
    return value.strip()


#: The pending list's query parameters; each is single-valued.
LIST_PARAMETERS = ("tier", "team", "target", "cursor")


def render_pending(engine: Engine, approver: str,
                   query: Mapping[str, str] | Sequence[tuple[str, str]]) -> HTMLResponse:
    """The pending list page for ``approver`` with the ``query`` (blocking: reads the store).

    ``query`` is the query string's ``(name, value)`` pairs as sent (or a
    mapping): a list parameter given twice is refused naming it, as the HTTP
    API refuses it, rather than the last one silently winning.
    """
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    params = dict(pairs)
    try:
        single_valued(pairs, LIST_PARAMETERS)
        tier = _query(params, "tier", 32)
        if tier is not None and tier not in lifecycle.INITIAL_BY_TIER:
            raise InputError(f"tier: {tier[:40]!r} is not one of {', '.join(lifecycle.INITIAL_BY_TIER)}",
                             code="invalid_query")
        team = _query(params, "team")
        target = _query(params, "target")
        raw_cursor = _query(params, "cursor", 300)
        # The query parameter's own wording (the HTTP API's), not the CLI's --cursor.
        cursor = parse_cursor(raw_cursor) if raw_cursor is not None else None
    except InputError as exc:
        return _error(400, "Bad filter", str(exc), approver)
    count = engine.count(lifecycle.PENDING)
    page = pending_page(engine, tier=tier, team=team, target=target, cursor=cursor)
    filters = {k: v for k, v in (("tier", tier), ("team", team), ("target", target)) if v is not None}
    next_url = f"/ui?{urlencode({**filters, 'cursor': page.next_cursor})}" if page.next_cursor else None
    return _page(
        "pending.html", approver=approver, count=count, page=page, filters=filters, tiers=_TIER_WORDS,
        next_url=next_url, first_url=f"/ui?{urlencode(filters)}" if cursor is not None else None,
        team_scan_limit=TEAM_SCAN_LIMIT,
    )


def render_request(engine: Engine, approver: str, request_id: str) -> HTMLResponse:
    """The request page of ``request_id`` for ``approver`` (blocking: reads the store, checks signatures)."""
    if not (1 <= len(request_id) <= 200 and request_id.isprintable() and request_id.isascii()):
        return _error(404, "No such request", "There is no request with that id.", approver)
    try:
        context = request_context(engine, request_id, approver)
    except NotFoundError:
        return _error(404, "No such request", f"There is no request with id {request_id[:60]!r}.", approver)
    return _page("request.html", approver=approver, **context)


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
@router.get("/requests", response_class=HTMLResponse)
async def pending(request: Request) -> Response:
    """The pending list: how many requests wait, then a page of them, newest first."""
    approver = await _session(request)
    if approver is None:
        return _login_redirect(request)
    svc: Service = request.app.state.service
    return await svc.run(render_pending, _engine(request), approver, request.query_params.multi_items())


@router.get("/requests/{request_id}", response_class=HTMLResponse)
async def request_page(request: Request, request_id: str) -> Response:
    """One request, with everything an approver needs to decide above the fold."""
    approver = await _session(request)
    if approver is None:
        return _login_redirect(request)
    svc: Service = request.app.state.service
    return await svc.run(render_request, _engine(request), approver, request_id)


@router.get("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Sign in with a passkey (the page's script runs the login routes of the passkeys module)."""
    return _page("login.html", approver=None, next=safe_next(request.query_params.get("next")))


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """One of the console's static files (a fixed set read at import; anything else is 404)."""
    found = _STATIC.get(name)
    if found is None:
        raise NotFoundError(f"no console file {name[:60]!r}")
    data, kind = found
    return Response(data, media_type=kind, headers={
        **SECURITY_HEADERS, "Cache-Control": "public, max-age=86400, immutable",
    })


def tier_names() -> Sequence[str]:
    """The tiers the pending list filters by (for tests and templates)."""
    return tuple(_TIER_WORDS)

"""The HTTP API of ``hitlgate serve``: FastAPI over one :class:`~hitlgate.engine.approve.workflow.Engine` per process.

Endpoints (all ``/v1`` ones need an API key; see :mod:`hitlgate.service.auth`):

==========================================  =====================================================
``GET /healthz``                            the process is up
``GET /readyz``                             the store answers, the engine keys load, the policy decides
``GET /.well-known/jwks.json``              the engine's public keys (to verify warrants offline)
``GET /metrics``                            Prometheus metrics (:mod:`hitlgate.service.metrics`)
``POST /v1/decisions``                      decide a proposal, store nothing
``POST /v1/requests``                       propose (``Idempotency-Key`` makes a retry return the same request)
``GET /v1/requests``                        list, newest first (status, tier, target, requester, since; cursor)
``GET /v1/requests/{id}``                   one request (``?wait=S`` long-polls while it is ``pending``)
``POST /v1/requests/{id}/votes``            a signed approval or rejection
``GET /v1/requests/{id}/warrant``           the request's one warrant
``POST /v1/warrants/verify``                check a warrant against an action (``consume: true`` uses it)
``POST /v1/requests/{id}/outcome``          the executor's report: executed, failed, unknown
``POST /v1/requests/{id}/revoke``           a signed revocation
``GET /ui``, ``/ui/requests/{id}``          the approvers' console (:mod:`hitlgate.service.console`)
==========================================  =====================================================

Nothing another replica needs is held in memory: the long-poll reads the
store every ``POLL_SECONDS``, idempotency keys are rows written with the
request, warrants are consumed under the store's constraint. Request
bodies are read under ``server.max_body_bytes`` and then the engine's own
document limits, parsed by the engine's strict JSON parser, and validated
by the engine; every error is the JSON document of :mod:`hitlgate.service.errors`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hitlgate import __version__
from hitlgate.engine._safeparse import parse_json
from hitlgate.engine._time import format_time
from hitlgate.engine.approve import lifecycle
from hitlgate.engine.approve.approvals import SignedStatement
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import Config
from hitlgate.engine.decide.decision import Decision
from hitlgate.engine.decide.policy import set_file_check_interval
from hitlgate.engine.decide.proposal import Proposal
from hitlgate.engine.keys.apikeys import ApiKeyError, ApiKeys, Principal
from hitlgate.engine.ledger.store import ListCursor, ListFilters
from hitlgate.engine.ledger.store import Request as StoredRequest
from hitlgate.errors import HitlgateError, InputError, InvalidWarrant, NotFoundError, StorageError
from hitlgate.service import _query, auth, console
from hitlgate.service import passkeys as passkey_routes
from hitlgate.service.collector import settle_for_serving
from hitlgate.service.errors import (
    ERROR_SCHEMA,
    ERROR_STATUSES,
    RateLimited,
    TooLarge,
    body_of,
    error_body,
    status_of,
)
from hitlgate.service.metrics import Metrics
from hitlgate.service.openapi import request_body, responses
from hitlgate.service.ticker import ticking

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How often a long-poll reads the request again.
POLL_SECONDS = 0.25

#: The outcome words of ``POST /v1/requests/{id}/outcome`` and the states they record.
OUTCOMES = lifecycle.OUTCOMES_BY_WORD

#: The HTTP methods that are their own ``method`` label on the duration histogram; any other is ``other``.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: Authentications ``POST /v1/decisions`` remembers at once, per worker.
_DECIDE_AUTH_ENTRIES = 4096
#: How long a token that authenticated stays "known good": looked up even from an address whose failure
#: bucket a flood of wrong tokens emptied (an agent or executor polling every few minutes keeps working).
_KNOWN_GOOD_SECONDS = 3600.0
#: Known-good tokens remembered per replica (beyond that, the expired ones go, then all of them).
_KNOWN_GOOD_ENTRIES = 65536

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")

#: What a request id or a warrant id (jti) may look like before it reaches the store.
_ID = re.compile(r"[\x21-\x7e]{1,200}")

#: The canned proposal ``/readyz`` asks the policy about (its answer is not used, only that it answers).
_READY_PROBE = {
    "action": {"type": "notify_owner", "target": "readyz-probe", "parameters": {}},
    "requester": {"id": "hitlgate-readyz", "kind": "service"},
    "justification": "readiness probe",
}


class Service:
    """What one app holds: the engine, its API keys, the rate limiter, the metrics."""

    def __init__(self, engine: Engine) -> None:
        """Serve ``engine`` (its configuration's ``server:`` settings apply)."""
        self.engine = engine
        self.settings = engine.config.server
        self.keys = ApiKeys(engine)
        self.limiter = auth.RateLimiter(self.settings.rate_per_second, self.settings.rate_burst)
        self.metrics = Metrics(lambda: engine.count(lifecycle.PENDING))
        self.threads = anyio.CapacityLimiter(self.settings.threads)
        self.auth_failures = auth.RateLimiter(self.settings.auth_failures_per_second, self.settings.auth_failure_burst)
        #: Long-polls in progress per API key id (touched on the event loop only, so no lock).
        self.waits: dict[str, int] = {}
        #: Recent successful authentications for ``POST /v1/decisions`` only: SHA-256 of the
        #: Authorization header -> (monotonic expiry, principal). Touched on the event loop only.
        self._decide_auth: dict[bytes, tuple[float, Principal]] = {}
        #: SHA-256 of Authorization headers that authenticated lately -> monotonic expiry. While an
        #: address's failure bucket is empty, only these are looked up (see principal). Event loop only.
        self._known_good: dict[bytes, float] = {}

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking engine call on the worker threads."""
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=self.threads)

    async def principal(self, request: Request) -> Principal:
        """The authenticated caller (see :mod:`hitlgate.service.auth`), before any of the body is read.

        A request without an Authorization header is refused (401) and spends
        nothing. Only a presented key that fails spends from the client
        address's bucket; once that bucket is empty, a key that authenticated
        here lately is still looked up and every other one is refused with 429
        before any lookup (steps 1-2 of :mod:`hitlgate.service.auth`).
        """
        header = request.headers.get("authorization")
        if not header:
            # Not a guess at a secret: any web page can make a browser send this (a text/plain POST
            # is a CORS simple request), so spending the address's bucket here would let a page
            # opened behind the same NAT or load balancer lock every agent and executor out.
            raise ApiKeyError(auth.NO_API_KEY)
        address = client_address(request)
        digest = hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()
        now = time.monotonic()
        if self._known_good.get(digest, 0.0) <= now and self.auth_failures.empty(address):
            # This address is throttled and this token has not authenticated lately: refused here,
            # on the event loop, without a worker thread or a database read, so a flood of wrong
            # tokens cannot slow every other client. A token that authenticated within
            # _KNOWN_GOOD_SECONDS is still looked up (a revoked key is refused at once).
            self.auth_failures.take(address, "this client address after failed authentications")
        try:
            principal = await self.run(auth.authenticate, self.keys, self.limiter, header)
        except ApiKeyError:
            self.auth_failures.take(address, "this client address after failed authentications")
            raise
        if len(self._known_good) >= _KNOWN_GOOD_ENTRIES:
            self._known_good = {k: v for k, v in self._known_good.items() if v > now}
            if len(self._known_good) >= _KNOWN_GOOD_ENTRIES:
                self._known_good.clear()
        self._known_good[digest] = now + _KNOWN_GOOD_SECONDS
        return principal

    async def decide_principal(self, request: Request) -> Principal:
        """:meth:`principal` for ``POST /v1/decisions``, reusing a recent success (``server.decide_auth_seconds``).

        That endpoint evaluates the policy and stores, signs and grants
        nothing, so a key revoked a moment ago deciding once more harms
        nothing; what it would take to act (a proposal, a vote, a warrant)
        looks the key up on every call. The per-key rate limit still applies
        to every call, and only successes are remembered: a wrong or revoked
        token is looked up (and refused) every time.
        """
        ttl = self.settings.decide_auth_seconds
        header = request.headers.get("authorization")
        if ttl <= 0 or not header:
            return await self.principal(request)
        digest = hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()
        now = time.monotonic()
        hit = self._decide_auth.get(digest)
        if hit is not None and hit[0] > now:
            self.limiter.take(hit[1].key_id)
            return hit[1]
        principal = await self.principal(request)
        if len(self._decide_auth) >= _DECIDE_AUTH_ENTRIES:
            # Many keys at once: forget the expired ones, or all of them (the next call looks each up again).
            live = {k: v for k, v in self._decide_auth.items() if v[0] > now}
            self._decide_auth = live if len(live) < _DECIDE_AUTH_ENTRIES else {}
        self._decide_auth[digest] = (now + ttl, principal)
        return principal

    async def body(self, request: Request, what: str, limit: int) -> Any:
        """The JSON body (see :meth:`raw_body`), parsed on a worker thread."""
        return await self.run(self.parse, await self.raw_body(request, what, limit), what)

    def parse(self, data: bytes, what: str) -> Any:
        """Parse a request body with the engine's strict parser (blocking: up to ``max_body_bytes`` of JSON)."""
        if not data:
            raise InputError(f"{what}: the request body is empty; send a JSON document", code="invalid_json")
        return parse_json(data, what=what, label="request body", max_depth=self.engine.config.limits.max_depth)

    async def raw_body(self, request: Request, what: str, limit: int) -> bytes:
        """The body's bytes, refused over ``min(limit, server.max_body_bytes)`` bytes as they arrive."""
        cap = min(limit, self.settings.max_body_bytes)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise TooLarge(f"{what}: the body is larger than the limit of {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise TooLarge(f"{what}: the body is larger than the limit of {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def proposal(self, doc: Any, principal: Principal) -> Proposal:
        """The proposal with the principal as its requester (a different requester id in the body is refused)."""
        if not isinstance(doc, dict):
            raise InputError("proposal: must be a JSON object", code="invalid_proposal")
        given = doc.get("requester")
        kind = "agent" if principal.role == "agent" else "service"
        if isinstance(given, dict):
            if "id" in given and given["id"] != principal.name:
                raise auth.Forbidden(
                    f"requester.id {str(given['id'])[:60]!r} is not this API key's principal {principal.name!r}; "
                    "the requester is always the key's principal (leave requester out)",
                    code="requester_mismatch",
                )
            given_kind = given.get("kind")
            if principal.role == "agent" and given_kind is not None and given_kind != "agent":
                # An agent key must not pass its proposals off as a service's or a human's:
                # the policy may treat kinds differently.
                raise auth.Forbidden(
                    f"requester.kind {str(given_kind)[:40]!r}: an agent API key always proposes as kind 'agent' "
                    "(leave requester out)", code="requester_mismatch")
            if isinstance(given_kind, str):
                kind = given_kind
        doc = {**doc, "requester": {"id": principal.name, "kind": kind}}
        return Proposal.from_dict(doc, limits=self.engine.config.limits)

    def view(self, req: StoredRequest, *, progress: bool = True) -> dict[str, Any]:
        """A request as the API shows it: the stored request, quorum progress, warrant state."""
        out = req.to_dict()
        if progress and req.decision.needs_approval:
            out["quorum_progress"] = self.engine.progress(req.id).to_dict()
        record = self.engine.warrant_records([req.id]).get(req.id)
        out["warrant"] = lifecycle.warrant_state(req, record, self.engine.now())
        return out

    def visible(self, principal: Principal, request_id: str) -> StoredRequest:
        """The request, if the principal may see it (else ``not_found``)."""
        req = self.engine.get(request_id)
        auth.require_owner(principal, req)
        return req


class _Timing:
    """Pure ASGI middleware timing each HTTP request by method, route template and status (no body buffering)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            # Only the route template and a fixed set of methods become labels: the raw
            # path or method (h11 accepts any token) would let a caller mint label values.
            route = getattr(scope.get("route"), "path", None)
            method = scope.get("method", "")
            self.metrics.request_duration.labels(
                method if method in _METHODS else "other", route if isinstance(route, str) else "unmatched",
                str(status[0])).observe(
                time.perf_counter() - start)


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(doc, status_code=status, headers=headers)


def create_app(engine: Engine) -> FastAPI:  # noqa: C901 - one function holds the route table, as FastAPI reads best.
    """The FastAPI application serving ``engine``."""
    svc = Service(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Load (or, on a new deployment, create) the engine keys before the
        # first request, so replicas sharing a key directory agree early.
        await svc.run(engine.keyring.jwks)
        # The periodic work of hitlgate.engine.tick (expiry, reminders, escalation, notifications)
        # while the app runs, on the one replica that holds the tick lease.
        async with ticking(engine):
            yield

    app = FastAPI(
        title="hitlgate",
        version=__version__,
        description="Human-in-the-loop decisions and warrants for response actions on non-human identities.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = svc

    # -- errors -------------------------------------------------------------

    @app.exception_handler(HitlgateError)
    async def _hitlgate_error(request: Request, exc: HitlgateError) -> JSONResponse:
        if isinstance(exc, StorageError):
            # The store's messages name the database (user, host, port, name): the log gets
            # them, the caller only the code.
            log.error("storage error serving %s %s: %s", request.method, request.url.path, exc)
            return _json(error_body(exc.code, "the state store failed; see the server log"), status_of(exc))
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return _json(body_of(exc), status_of(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        # Like every other invalid-input message, the problems are in the message too, one a line,
        # so a client that shows only the message still says what to fix.
        lines = "".join(f"\n  - {p}" for p in problems[:20])
        message = f"invalid request: {len(problems)} problem(s){lines}"
        return _json(error_body("invalid_request", message, problems[:20]), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json(error_body(code, str(exc.detail)), exc.status_code)

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error serving a request", exc_info=exc)
        return _json(error_body("internal", f"unexpected {type(exc).__name__} (a bug in hitlgate; see the log)"), 500)

    app.add_middleware(_Timing, metrics=svc.metrics)

    # -- operations ---------------------------------------------------------

    @app.get("/healthz", tags=["operations"], responses=responses(200, "the process is up", {"type": "object"}))
    async def healthz() -> JSONResponse:
        """The process is up (no dependency is checked)."""
        return _json({"ok": True})

    @app.get("/readyz", tags=["operations"], responses=responses(200, "ready", {"type": "object"}, errors=(503,)))
    async def readyz() -> JSONResponse:
        """Ready to serve: the store answers at the current schema, the engine keys load, the policy decides."""
        problems: list[str] = []
        checks: dict[str, str] = {}
        try:
            version = await svc.run(engine.store.schema_version)
            checks["database"] = f"schema version {version}"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the probe must answer.
            # The message may name the database (user, host, port): it goes to the log only.
            log.error("readiness: the state store failed: %s", exc)
            problems.append(f"database: {getattr(exc, 'code', type(exc).__name__)} (see the server log)")
        try:
            jwks = await svc.run(engine.keyring.jwks)
            checks["keys"] = f"{len(jwks.get('keys', []))} key(s)"
        except Exception as exc:  # noqa: BLE001 - an unreadable key directory (OSError too) means not ready.
            problems.append(f"keys: {exc}")
        decision = await svc.run(engine.decider.decide, _READY_PROBE)
        if decision.fail_closed is not None:
            problems.append(f"policy: {decision.fail_closed['code']}: {'; '.join(decision.reasons)}")
        else:
            checks["policy"] = decision.policy_revision
        if problems:
            return _json(error_body("not_ready", "not ready: " + "; ".join(problems), problems), 503)
        return _json({"ok": True, "checks": checks})

    @app.get("/.well-known/jwks.json", tags=["operations"],
             responses=responses(200, "the engine's public keys", {"type": "object", "required": ["keys"]}))
    async def jwks() -> JSONResponse:
        """The engine's public signing keys (JWKS), current and retired-but-trusted."""
        return _json(await svc.run(engine.keyring.jwks))

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}})
    async def metrics() -> Response:
        """Prometheus metrics of this replica."""
        data = await svc.run(svc.metrics.render)
        return Response(data, media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- decisions and proposals --------------------------------------------

    limits = engine.config.limits

    @app.post("/v1/decisions", tags=["agents"], openapi_extra=request_body("Proposal"),
              responses=responses(200, "the decision", {"$ref": "#/components/schemas/Decision"}))
    async def decide(request: Request) -> JSONResponse:
        """Decide a proposal and store nothing (requester: the API key's principal)."""
        principal = await svc.decide_principal(request)  # Before a byte of the body is read.
        auth.require(principal, "decide")
        data = await svc.raw_body(request, "proposal", limits.proposal_bytes)

        def work() -> Decision:
            # Parsing, validation and the policy in one trip to the worker threads.
            return engine.decider.decide_validated(svc.proposal(svc.parse(data, "proposal"), principal))

        decision = await svc.run(work)
        fc = decision.fail_closed["code"] if decision.fail_closed is not None else None
        svc.metrics.decided(decision.tier, engine.decider.backend.name, fc)
        return _json(decision.to_dict())

    @app.post("/v1/requests", tags=["agents"], openapi_extra=request_body("Proposal"),
              responses=responses(201, "the stored request", {"$ref": "#/components/schemas/Request"},
                                  extra={200: "a retry: the request stored under this Idempotency-Key"}))
    async def propose(
        request: Request,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
    ) -> JSONResponse:
        """Propose: decide and store a request. A retry with the same ``Idempotency-Key`` returns the same request."""
        principal = await svc.principal(request)  # Before a byte of the body is read.
        auth.require(principal, "propose")
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InputError("Idempotency-Key: 1 to 200 printable ASCII characters, no spaces",
                             code="invalid_idempotency_key")
        data = await svc.raw_body(request, "proposal", limits.proposal_bytes)

        def work() -> tuple[dict[str, Any], StoredRequest, bool]:
            # Parsing, the proposal and its view in one trip to the worker threads.
            once = (principal.name, idempotency_key) if idempotency_key is not None else None
            proposal = svc.proposal(svc.parse(data, "proposal"), principal)
            req, replayed = engine.propose_once(proposal, idempotency=once)
            return svc.view(req), req, replayed

        view, req, replayed = await svc.run(work)
        if not replayed:
            fc = req.decision.fail_closed["code"] if req.decision.fail_closed is not None else None
            svc.metrics.decided(req.tier, engine.decider.backend.name, fc)
        headers = {"Location": f"/v1/requests/{req.id}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return _json(view, 200 if replayed else 201, headers)

    @app.get("/v1/requests", tags=["requests"],
             responses=responses(200, "a page of requests", {"$ref": "#/components/schemas/RequestPage"}))
    async def list_requests(
        request: Request,
        status: Annotated[str | None, Query(max_length=32)] = None,
        tier: Annotated[str | None, Query(max_length=32)] = None,
        target: Annotated[str | None, Query(max_length=200)] = None,
        requester: Annotated[str | None, Query(max_length=200)] = None,
        since: Annotated[str | None, Query(max_length=40, description=(
            "RFC 3339 time in UTC (Z), whole or fractional seconds: 2026-01-31T12:00:00Z"))] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=300)] = None,
    ) -> JSONResponse:
        """Requests, newest first. An agent key lists only its own; ``next_cursor`` continues the listing."""
        principal = await svc.principal(request)
        auth.require(principal, "read")
        _single_valued(request, ("status", "tier", "target", "requester", "since", "limit", "cursor"))
        if not auth.sees_all(principal):
            if requester is not None and requester != principal.name:
                raise auth.Forbidden("an agent key lists only its own requests (leave requester out)")
            requester = principal.name
        for name, value in (("target", target), ("requester", requester)):
            if value is not None and not _printable(value):
                raise InputError(f"{name}: printable characters only (no control characters or NUL)",
                                 code="invalid_query")
        if status is not None and status not in lifecycle.STATES:
            raise InputError(f"status: {status[:40]!r} is not one of {', '.join(lifecycle.STATES)}",
                             code="invalid_query")
        if tier is not None and tier not in lifecycle.INITIAL_BY_TIER:
            raise InputError(f"tier: {tier[:40]!r} is not one of {', '.join(lifecycle.INITIAL_BY_TIER)}",
                             code="invalid_query")
        since_at = _query.since(since) if since is not None else None
        before = _query.cursor(cursor) if cursor is not None else None
        filters = ListFilters(tier=tier, target=target, requester=requester, since=since_at)
        page = await svc.run(engine.list, status, limit=limit, before=before, filters=filters)

        def views() -> list[dict[str, Any]]:
            records = engine.warrant_records([r.id for r in page])
            now = engine.now()
            out = []
            for r in page:
                doc = r.to_dict()
                doc["warrant"] = lifecycle.warrant_state(r, records.get(r.id), now)
                out.append(doc)
            return out

        next_cursor = ListCursor.after(page[-1]).encode() if len(page) == limit else None
        return _json({"requests": await svc.run(views), "next_cursor": next_cursor})

    @app.get("/v1/requests/{request_id}", tags=["requests"],
             responses=responses(200, "the request", {"$ref": "#/components/schemas/Request"}))
    async def get_request(
        request: Request,
        request_id: Annotated[str, "the request id"],
        wait: Annotated[float, Query(ge=0, le=3600, description="long-poll up to this many seconds")] = 0,
        while_status: Annotated[str, Query(max_length=32, description="wait while the request is in this state")]
        = lifecycle.PENDING,
    ) -> JSONResponse:
        """One request with its decision, quorum progress, votes and warrant state.

        ``?wait=S`` answers as soon as the request is no longer in
        ``while_status`` (default ``pending``), or after S seconds (at most
        ``server.max_wait_seconds``), whichever comes first. It reads the
        store, so a vote recorded by any replica ends the wait.
        """
        principal = await svc.principal(request)
        auth.require(principal, "read")
        _single_valued(request, ("wait", "while_status"))
        request_id = _path_id(request_id)
        req = await svc.run(svc.visible, principal, request_id)
        seconds = min(wait, float(svc.settings.max_wait_seconds))
        if seconds <= 0 or req.status != while_status:
            return _json(await svc.run(svc.view, req))
        # One rate-limit token must not buy unbounded waiting: a few long-polls per key at
        # once. Between polls the wait sleeps on the event loop, holding no worker thread.
        key = principal.key_id
        if svc.waits.get(key, 0) >= svc.settings.max_waits_per_key:
            raise RateLimited(f"this API key already has {svc.settings.max_waits_per_key} long-polls (?wait=) "
                              "in progress; retry when one ends", retry_after=min(seconds, POLL_SECONDS * 4))
        svc.waits[key] = svc.waits.get(key, 0) + 1
        try:
            deadline = time.monotonic() + seconds
            while req.status == while_status and time.monotonic() < deadline:
                await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
                if req.status == lifecycle.PENDING and engine.now() >= req.expires_at:
                    # The window closed: record the expiry (any replica may), as engine.wait does.
                    req = await svc.run(engine.wait, request_id, 0)
                else:
                    req = await svc.run(engine.get, request_id)
        finally:
            svc.waits[key] -= 1
            if not svc.waits[key]:
                del svc.waits[key]
        return _json(await svc.run(svc.view, req))

    # -- votes, warrants, outcomes, revocation -------------------------------

    @app.post("/v1/requests/{request_id}/votes", tags=["approvers"], openapi_extra=request_body("SignedStatement"),
              responses=responses(200, "the request after the vote", {"$ref": "#/components/schemas/Request"}))
    async def vote(request: Request, request_id: str) -> JSONResponse:
        """Submit a signed approval or rejection; the signature, not the API key, says who votes."""
        principal = await svc.principal(request)
        auth.require(principal, "vote")
        request_id = _path_id(request_id)
        signed = SignedStatement.from_dict(await svc.body(request, "signed approval", limits.approval_bytes))
        if signed.statement.request_id != request_id:
            raise InputError(f"the statement is for request {signed.statement.request_id}, not {request_id}",
                             code="request_mismatch")
        req = await svc.run(svc.visible, principal, request_id)
        if req.requester == principal.name:
            raise auth.Forbidden(f"{principal.name} proposed request {req.id} and cannot submit votes on it",
                                 code="self_approval")
        submit = engine.approve if signed.statement.verdict == "approve" else engine.reject
        req = await svc.run(submit, signed)
        if req.status == lifecycle.GRANTED:
            svc.metrics.approval_latency.observe((req.updated_at - req.created_at).total_seconds())
        return _json(await svc.run(svc.view, req))

    @app.get("/v1/requests/{request_id}/warrant", tags=["agents"],
             responses=responses(200, "the warrant", {"$ref": "#/components/schemas/Warrant"}))
    async def get_warrant(request: Request, request_id: str) -> JSONResponse:
        """The one warrant of a granted request (issued on the first call, the same token after)."""
        principal = await svc.principal(request)
        auth.require(principal, "warrant")
        request_id = _path_id(request_id)
        await svc.run(svc.visible, principal, request_id)
        w = await svc.run(engine.warrant, request_id)
        return _json({"request_id": w.request_id, "jti": w.jti, "kid": w.kid, "token": w.token,
                      "issued_at": format_time(w.issued_at), "expires_at": format_time(w.expires_at)})

    @app.post("/v1/warrants/verify", tags=["executors"], openapi_extra=request_body("VerifyRequest"),
              responses=responses(200, "the warrant is valid (and consumed, with consume: true)",
                                  {"$ref": "#/components/schemas/VerifyResult"}))
    async def verify(request: Request) -> JSONResponse:
        """Check a warrant against the action about to run; ``consume: true`` also uses it up (executors only)."""
        principal = await svc.principal(request)
        doc = await svc.body(request, "verify request", limits.warrant_bytes + limits.proposal_bytes)
        token, action, consume = _verify_request(doc)
        auth.require(principal, "consume" if consume else "verify")
        guard = engine.guard()
        try:
            if consume:
                grant = await svc.run(guard.consume, token, action)
                claims = grant.claims
            else:
                claims = await svc.run(guard.check, token, action)
        except InvalidWarrant as exc:
            svc.metrics.verify_failures.labels(reason=exc.code).inc()
            raise
        return _json({
            "valid": True, "consumed": consume, "request_id": claims.request_id, "jti": claims.jti,
            "tier": claims.tier, "action_digest": claims.action_digest, "expires_at": format_time(claims.expires_at),
            "approvals": [dict(a) for a in claims.approvals], "kid": claims.kid,
        })

    @app.post("/v1/requests/{request_id}/outcome", tags=["executors"], openapi_extra=request_body("Outcome"),
              responses=responses(200, "the request with its outcome", {"$ref": "#/components/schemas/Request"}))
    async def outcome(request: Request, request_id: str) -> JSONResponse:
        """The executor reports how the action it consumed a warrant for ended: executed, failed or unknown."""
        principal = await svc.principal(request)
        auth.require(principal, "outcome")
        request_id = _path_id(request_id)
        doc = await svc.body(request, "outcome", limits.approval_bytes)
        jti, word, detail = _outcome_request(doc)
        await svc.run(engine.guard().report, request_id, jti, OUTCOMES[word], detail)
        return _json(await svc.run(svc.view, await svc.run(engine.get, request_id)))

    @app.post("/v1/requests/{request_id}/revoke", tags=["approvers"], openapi_extra=request_body("SignedStatement"),
              responses=responses(200, "the revoked request", {"$ref": "#/components/schemas/Request"}))
    async def revoke(request: Request, request_id: str) -> JSONResponse:
        """Revoke a pending or granted-but-unused request with a signed ``reject`` statement by an eligible person."""
        principal = await svc.principal(request)
        auth.require(principal, "revoke")
        request_id = _path_id(request_id)
        signed = SignedStatement.from_dict(await svc.body(request, "signed rejection", limits.approval_bytes))
        await svc.run(svc.visible, principal, request_id)
        req = await svc.run(engine.revoke, request_id, by=signed.statement.approver, signed=signed)
        return _json(await svc.run(svc.view, req))

    app.include_router(passkey_routes.router)
    app.include_router(console.router)

    from hitlgate.service.openapi import install

    install(app, ERROR_SCHEMA, ERROR_STATUSES)
    return app


def client_address(request: Request) -> str:
    """The address the per-address buckets are kept under (the peer of the connection)."""
    return request.client.host if request.client is not None else "unknown"


def _single_valued(request: Request, names: tuple[str, ...]) -> None:
    """Refuse a query that gives one of ``names`` more than once (400 ``invalid_query``).

    FastAPI would keep the last value silently; a filter appended by a proxy
    or a client library must not change what a query means unnoticed.
    """
    _query.single_valued(request.query_params.multi_items(), names)


def _printable(value: str) -> bool:
    return value.isprintable()


def _path_id(value: str) -> str:
    """A request id from the path, or ``not_found`` (no id has control characters, NUL or 200+ characters)."""
    if not _ID.fullmatch(value):
        raise NotFoundError(f"no request with id {value[:60]!r}")
    return value


def _verify_request(doc: Any) -> tuple[str, dict[str, Any], bool]:
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise InputError("verify request: must be a JSON object", code="invalid_verify_request")
    problems += [f"{k}: unknown field" for k in sorted(set(doc) - {"warrant", "action", "consume"}, key=str)]
    token = doc.get("warrant")
    if not isinstance(token, str) or not token:
        problems.append("warrant: required, a compact JWS string")
    action = doc.get("action")
    if isinstance(action, dict) and isinstance(action.get("action"), dict):
        action = action["action"]  # A whole proposal: the action inside it.
    if not isinstance(action, dict):
        problems.append("action: required, the action object about to run")
    consume = doc.get("consume", False)
    if not isinstance(consume, bool):
        problems.append("consume: must be true or false")
    if problems:
        raise InputError(f"invalid verify request: {'; '.join(problems)}", code="invalid_verify_request",
                         problems=problems)
    assert isinstance(token, str) and isinstance(action, dict) and isinstance(consume, bool)  # noqa: S101
    return token, action, consume


def _outcome_request(doc: Any) -> tuple[str, str, str]:
    if not isinstance(doc, dict):
        raise InputError("outcome: must be a JSON object", code="invalid_outcome")
    problems = [f"{k}: unknown field" for k in sorted(set(doc) - {"jti", "outcome", "detail"}, key=str)]
    jti, word, detail = doc.get("jti"), doc.get("outcome"), doc.get("detail", "")
    if not isinstance(jti, str) or not _ID.fullmatch(jti):
        problems.append("jti: required, the id of the consumed warrant (1 to 200 printable ASCII characters)")
    if not isinstance(word, str) or word not in OUTCOMES:
        problems.append(f"outcome: required, one of {', '.join(OUTCOMES)}")
    if not isinstance(detail, str):
        problems.append("detail: must be a string")
    elif not lifecycle.plain_text(detail):
        # The detail becomes the request's status_reason, which `hitlgate show` and the console
        # print: refused like an approval's reason, so it cannot rewrite a terminal or fake a line.
        problems.append("detail: must not contain control characters other than newlines and tabs, "
                        "nor bidirectional override or isolate characters")
    if problems:
        raise InputError(f"invalid outcome: {'; '.join(problems)}", code="invalid_outcome", problems=problems)
    assert isinstance(jti, str) and isinstance(word, str) and isinstance(detail, str)  # noqa: S101
    return jti, word, detail[:2000]


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn --factory`` (``hitlgate serve --workers N``): configuration from ``$HITLGATE_CONFIG``."""
    from hitlgate.engine.config import load_config

    config: Config = load_config(None)
    set_file_check_interval(config.server.file_check_seconds)
    app = create_app(Engine.from_config(config))
    settle_for_serving()
    return app

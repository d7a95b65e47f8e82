"""A Python client of ``hitlgate serve`` (httpx; sync :class:`Client` and async :class:`AsyncClient`).

Failures raise the library's own exception types, so code written against
:class:`~hitlgate.engine.approve.workflow.Engine` handles the service the same way:
an error document ``{"error": {"code", "message", "problems"}}`` becomes the
:class:`~hitlgate.errors.HitlgateError` subclass its status and code name
(:func:`error_from_response`), with the same ``code``; a service that cannot
be reached, or does not answer in time, raises
:class:`~hitlgate.errors.BackendUnavailable` with code ``unreachable``
(never a bare httpx exception)::

    with Client("http://hitlgate:8080", api_key=token) as hg:
        req = hg.propose(proposal, idempotency_key="inc-42-rotate")
        req = hg.wait(req["id"], timeout=600)
        warrant = hg.warrant(req["id"])["token"]

    # the executor, with its own key
    with Client(url, api_key=executor_token) as hg:
        hg.verify(warrant, action, consume=True)
        ...  # run the action
        hg.report_outcome(request_id, jti, "executed")
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from hitlgate.engine.approve.approvals import SignedStatement
from hitlgate.engine.keys.apikeys import ApiKeyError
from hitlgate.errors import (
    ApprovalError,
    BackendUnavailable,
    HitlgateError,
    IllegalTransition,
    InputError,
    InvalidWarrant,
    NotFoundError,
    PendingApproval,
    PolicyError,
    StorageError,
)
from hitlgate.service.errors import Forbidden, RateLimited, TooLarge

__all__ = ["AsyncClient", "Client", "error_from_response"]

#: Codes of refusals by the service itself (role, principal), not by the engine.
_FORBIDDEN = frozenset({"forbidden", "requester_mismatch"})

#: The longest single long-poll the client asks for; :meth:`Client.wait` repeats it up to its timeout.
_POLL_CHUNK = 30.0


def error_from_response(response: httpx.Response, *, refused: type[HitlgateError] = ApprovalError) -> HitlgateError:
    """The library exception for an error response; ``refused`` is the type of a 403 the engine made."""
    try:
        err = response.json()["error"]
        code, message, problems = str(err["code"]), str(err["message"]), tuple(err.get("problems") or ())
    except (ValueError, KeyError, TypeError):
        code, message, problems = "http_error", f"HTTP {response.status_code}: {response.text[:200]}", ()
    status = response.status_code
    cls: type[HitlgateError]
    if status == 401:
        cls = ApiKeyError
    elif status == 403:
        cls = Forbidden if code in _FORBIDDEN else refused
    elif status == 404:
        cls = NotFoundError
    elif status == 409:
        conflict = {"pending": PendingApproval, "idempotency_conflict": InputError}
        cls = conflict.get(code, IllegalTransition)
    elif status == 413:
        cls = TooLarge
    elif status == 429:
        cls = RateLimited
    elif 400 <= status < 500:
        cls = InputError
    elif code == "policy_broken":
        cls = PolicyError
    elif code in ("backend_unavailable", "not_ready"):
        cls = BackendUnavailable
    elif status == 503:
        cls = StorageError
    else:
        cls = HitlgateError
    return cls(message, code=code, problems=problems)


def _unreachable(request: httpx.Request, exc: httpx.TransportError) -> BackendUnavailable:
    """The library exception for a service that could not be reached or did not answer (code ``unreachable``)."""
    where = f"{request.url.scheme}://{request.url.netloc.decode('ascii', 'replace')}"
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        what = "the request was not sent"
    else:
        # Sent, but no answer: a consume or a vote may or may not have taken effect.
        what = "no answer came, so whether the request took effect is unknown"
    return BackendUnavailable(f"cannot reach the hitlgate service at {where} ({type(exc).__name__}): {what}",
                              code="unreachable")


class _Http(httpx.Client):
    """httpx's client, whose transport failures raise :class:`BackendUnavailable` like every other failure."""

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        try:
            return super().send(request, **kwargs)
        except httpx.TransportError as exc:
            raise _unreachable(request, exc) from exc


class _AsyncHttp(httpx.AsyncClient):
    """The asynchronous twin of :class:`_Http`."""

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        try:
            return await super().send(request, **kwargs)
        except httpx.TransportError as exc:
            raise _unreachable(request, exc) from exc


def _statement(signed: SignedStatement | Mapping[str, Any]) -> dict[str, Any]:
    return signed.to_dict() if isinstance(signed, SignedStatement) else dict(signed)


def _list_params(status: str | None, tier: str | None, target: str | None, requester: str | None,
                 since: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    given = {"status": status, "tier": tier, "target": target, "requester": requester, "since": since,
             "limit": limit, "cursor": cursor}
    return {k: v for k, v in given.items() if v is not None}


def _check(response: httpx.Response, refused: type[HitlgateError] = ApprovalError) -> Any:
    if response.status_code >= 400:
        raise error_from_response(response, refused=refused)
    return response.json()


class Client:
    """A synchronous client; use it as a context manager, or call :meth:`close`."""

    def __init__(self, base_url: str, *, api_key: str, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        """Talk to the service at ``base_url`` with ``api_key`` (a token from ``hitlgate apikey create``)."""
        self.http: httpx.Client = _Http(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"},
                                 timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def decide(self, proposal: Mapping[str, Any]) -> dict[str, Any]:
        """The decision for ``proposal``; nothing is stored."""
        return dict(_check(self.http.post("/v1/decisions", json=dict(proposal))))

    def propose(self, proposal: Mapping[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Store a request; with ``idempotency_key`` a retry returns the same request."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return dict(_check(self.http.post("/v1/requests", json=dict(proposal), headers=headers)))

    def get(self, request_id: str, *, wait: float = 0, while_status: str = "pending") -> dict[str, Any]:
        """One request; with ``wait`` the server answers once it leaves ``while_status`` (or after ``wait`` s)."""
        params: dict[str, Any] = {"wait": wait, "while_status": while_status} if wait else {}
        return dict(_check(self.http.get(f"/v1/requests/{request_id}", params=params,
                                         timeout=self.http.timeout.read + wait if self.http.timeout.read else None)))

    def wait(self, request_id: str, timeout: float) -> dict[str, Any]:
        """Long-poll until the request leaves ``pending`` or ``timeout`` seconds pass; return it (may be pending)."""
        deadline = time.monotonic() + timeout
        req = self.get(request_id)
        while req["status"] == "pending" and (left := deadline - time.monotonic()) > 0:
            req = self.get(request_id, wait=min(left, _POLL_CHUNK))
        return req

    def list(self, *, status: str | None = None, tier: str | None = None, target: str | None = None,
             requester: str | None = None, since: str | None = None, limit: int = 50,
             cursor: str | None = None) -> dict[str, Any]:
        """One page of requests, newest first: ``{"requests": [...], "next_cursor": ...}``."""
        params = _list_params(status, tier, target, requester, since, limit, cursor)
        return dict(_check(self.http.get("/v1/requests", params=params)))

    def vote(self, request_id: str, signed: SignedStatement | Mapping[str, Any]) -> dict[str, Any]:
        """Submit a signed approval or rejection."""
        return dict(_check(self.http.post(f"/v1/requests/{request_id}/votes", json=_statement(signed))))

    def warrant(self, request_id: str) -> dict[str, Any]:
        """The request's warrant: ``{"token", "jti", "expires_at", ...}``."""
        return dict(_check(self.http.get(f"/v1/requests/{request_id}/warrant")))

    def verify(self, token: str, action: Mapping[str, Any], *, consume: bool = False) -> dict[str, Any]:
        """Check the warrant against the action about to run (and consume it); :class:`InvalidWarrant` if refused."""
        body = {"warrant": token, "action": dict(action), "consume": consume}
        return dict(_check(self.http.post("/v1/warrants/verify", json=body), InvalidWarrant))

    def report_outcome(self, request_id: str, jti: str, outcome: str, detail: str = "") -> dict[str, Any]:
        """Report how the action ended: ``executed``, ``failed`` or ``unknown``."""
        body = {"jti": jti, "outcome": outcome, "detail": detail}
        return dict(_check(self.http.post(f"/v1/requests/{request_id}/outcome", json=body)))

    def revoke(self, request_id: str, signed: SignedStatement | Mapping[str, Any]) -> dict[str, Any]:
        """Revoke with a signed ``reject`` statement."""
        return dict(_check(self.http.post(f"/v1/requests/{request_id}/revoke", json=_statement(signed))))

    def jwks(self) -> dict[str, Any]:
        """The engine's public keys."""
        return dict(_check(self.http.get("/.well-known/jwks.json")))


class AsyncClient:
    """The asynchronous twin of :class:`Client` (same methods, awaited)."""

    def __init__(self, base_url: str, *, api_key: str, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None, limits: httpx.Limits | None = None) -> None:
        """Talk to the service at ``base_url`` with ``api_key``."""
        self.http: httpx.AsyncClient = _AsyncHttp(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"},
                                      timeout=timeout, transport=transport,
                                      limits=limits if limits is not None else httpx.Limits())

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self.http.aclose()

    async def decide(self, proposal: Mapping[str, Any]) -> dict[str, Any]:
        """The decision for ``proposal``; nothing is stored."""
        return dict(_check(await self.http.post("/v1/decisions", json=dict(proposal))))

    async def propose(self, proposal: Mapping[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Store a request; with ``idempotency_key`` a retry returns the same request."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return dict(_check(await self.http.post("/v1/requests", json=dict(proposal), headers=headers)))

    async def get(self, request_id: str, *, wait: float = 0, while_status: str = "pending") -> dict[str, Any]:
        """One request; with ``wait`` the server answers once it leaves ``while_status``."""
        params: dict[str, Any] = {"wait": wait, "while_status": while_status} if wait else {}
        timeout = self.http.timeout.read + wait if self.http.timeout.read else None
        return dict(_check(await self.http.get(f"/v1/requests/{request_id}", params=params, timeout=timeout)))

    async def wait(self, request_id: str, timeout: float) -> dict[str, Any]:
        """Long-poll until the request leaves ``pending`` or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        req = await self.get(request_id)
        while req["status"] == "pending" and (left := deadline - time.monotonic()) > 0:
            req = await self.get(request_id, wait=min(left, _POLL_CHUNK))
        return req

    async def list(self, *, status: str | None = None, tier: str | None = None, target: str | None = None,
                   requester: str | None = None, since: str | None = None, limit: int = 50,
                   cursor: str | None = None) -> dict[str, Any]:
        """One page of requests, newest first."""
        params = _list_params(status, tier, target, requester, since, limit, cursor)
        return dict(_check(await self.http.get("/v1/requests", params=params)))

    async def vote(self, request_id: str, signed: SignedStatement | Mapping[str, Any]) -> dict[str, Any]:
        """Submit a signed approval or rejection."""
        return dict(_check(await self.http.post(f"/v1/requests/{request_id}/votes", json=_statement(signed))))

    async def warrant(self, request_id: str) -> dict[str, Any]:
        """The request's warrant."""
        return dict(_check(await self.http.get(f"/v1/requests/{request_id}/warrant")))

    async def verify(self, token: str, action: Mapping[str, Any], *, consume: bool = False) -> dict[str, Any]:
        """Check the warrant against the action about to run (and consume it)."""
        body = {"warrant": token, "action": dict(action), "consume": consume}
        return dict(_check(await self.http.post("/v1/warrants/verify", json=body), InvalidWarrant))

    async def report_outcome(self, request_id: str, jti: str, outcome: str, detail: str = "") -> dict[str, Any]:
        """Report how the action ended."""
        body = {"jti": jti, "outcome": outcome, "detail": detail}
        return dict(_check(await self.http.post(f"/v1/requests/{request_id}/outcome", json=body)))

    async def revoke(self, request_id: str, signed: SignedStatement | Mapping[str, Any]) -> dict[str, Any]:
        """Revoke with a signed ``reject`` statement."""
        return dict(_check(await self.http.post(f"/v1/requests/{request_id}/revoke", json=_statement(signed))))

    async def jwks(self) -> dict[str, Any]:
        """The engine's public keys."""
        return dict(_check(await self.http.get("/.well-known/jwks.json")))

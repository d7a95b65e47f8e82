"""Who may call which endpoint: bearer API keys, roles, ownership, and a per-key rate limit.

Every ``/v1`` endpoint runs these checks, in this order, before it touches
the engine:

1. an ``Authorization`` header is present (else 401 ``unauthenticated``,
   and nothing is spent: see below);
2. the token is a valid, unrevoked API key (:meth:`ApiKeys.authenticate`:
   one indexed read, a constant-time comparison of hashes; a failure writes
   nothing, so bad tokens never queue for the audit lock); a token that
   fails spends one token of its client address's bucket (per address in
   this replica, ``server.auth_failure_burst`` refilled at
   ``auth_failures_per_second``) and is refused with 401
   ``unauthenticated``, or with 429 ``rate_limited`` and ``Retry-After``
   once that bucket is empty;
3. the key is under its rate (a token bucket per key id in this replica;
   else 429 ``rate_limited``), so one key's flood cannot starve other
   writers of the store's write lock;
4. the key's role may call the endpoint (:data:`PERMISSIONS`; else 403
   ``forbidden``);
5. for one request's data, an ``agent`` key must be the request's
   requester: another agent's request answers 404 ``not_found``, exactly
   like a request that does not exist, so ids cannot be probed.

The requester of a proposal is always the key's principal (a different
``requester.id`` in the body is refused with ``requester_mismatch``), so
the engine's self-approval check compares approvers against the principal.
An ``agent`` key always proposes as ``requester.kind: agent``: another
kind in the body is refused with ``requester_mismatch`` (the policy may
treat kinds differently). An ``admin`` key (the only other role that may
propose or decide) may send ``agent``, ``human`` or ``service`` and gets
``service`` when it sends none.
A vote relayed by the key that proposed the request is refused too
(``self_approval``), whoever signed it.

What spends the per-address bucket, and what it guards. Only a presented
credential that fails spends it. A request with no Authorization header is
not a guess at a secret, and any web page can make a browser send one (a
``text/plain`` POST is a CORS simple request): if it spent the bucket, a
page opened behind the same NAT, proxy or load balancer could keep every
agent and executor behind it locked out during an incident. A browser
cannot attach an Authorization header cross-site without a CORS preflight,
which this service never grants, so whoever spends the bucket is a client
of the API itself. While an address's bucket is empty, a token this
replica saw authenticate within the last hour is still looked up (and
served if it is still valid), so the agents and executors at work behind
that address keep working; every other token from it is refused with 429
on the event loop, without a worker thread or a database read, so a flood
of wrong tokens cannot slow anyone else down. That gives up slowing down a
guesser whose guess happens to be right, and it is worth nothing: a key's
secret is 256 random bits, so no rate of guessing finds one. A valid key
not seen lately waits for the bucket to refill, as a failing one does.

All of it happens before a request body is read. Three ways the app uses
this module: ``authenticate`` (steps 2-3; the app checks step 1 on the event
loop and spends the address's bucket on a failure of step 2),
``require`` (step 4) and ``require_owner`` (step 5).
"""

from __future__ import annotations

import threading
import time

from hitlgate.engine.keys.apikeys import ApiKeyError, ApiKeys, Principal
from hitlgate.engine.ledger.store import Request
from hitlgate.errors import NotFoundError
from hitlgate.service.errors import Forbidden, RateLimited

#: Buckets a limiter keeps before it forgets the full ones.
_MAX_BUCKETS = 100_000

#: What each role may do. Operations are named after the endpoints.
PERMISSIONS: dict[str, frozenset[str]] = {
    "agent": frozenset({"decide", "propose", "read", "vote", "warrant", "revoke"}),
    "executor": frozenset({"read", "verify", "consume", "outcome"}),
    "viewer": frozenset({"read", "read_all", "vote", "revoke"}),
    "admin": frozenset({"decide", "propose", "read", "read_all", "vote", "warrant", "verify", "revoke"}),
}
# Consuming a warrant and reporting an outcome are the executor's alone: an
# admin key in an agent's hands must still not be able to burn or fake them.


class RateLimiter:
    """A token bucket per API key id (per replica: a limit, not a correctness guarantee)."""

    def __init__(self, rate_per_second: float, burst: int) -> None:
        """``rate_per_second`` tokens refill each bucket up to ``burst``; 0 disables the limit."""
        self.rate = rate_per_second
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def empty(self, key_id: str) -> bool:
        """Whether ``key_id``'s bucket holds less than one token (spends nothing)."""
        if self.rate <= 0:
            return False
        with self._lock:
            tokens, last = self._buckets.get(key_id, (self.burst, time.monotonic()))
            return min(self.burst, tokens + (time.monotonic() - last) * self.rate) < 1

    def take(self, key_id: str, what: str = "this API key") -> None:
        """Spend one token of ``key_id``'s bucket; :class:`RateLimited` when it is empty."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > _MAX_BUCKETS:
                # Many distinct keys or addresses: forget the full buckets (they hold no debt).
                self._buckets = {k: v for k, v in self._buckets.items()
                                 if v[0] + (now - v[1]) * self.rate < self.burst}
            tokens, last = self._buckets.get(key_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[key_id] = (tokens, now)
                raise RateLimited(f"too many requests for {what} (limit {self.rate:g}/s); retry shortly",
                                  retry_after=(1 - tokens) / self.rate)
            self._buckets[key_id] = (tokens - 1, now)


#: The refusal of a request without an Authorization header.
NO_API_KEY = "no API key: send the header 'Authorization: Bearer <key>' (`hitlgate apikey create`)"


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header; :class:`ApiKeyError` when there is none."""
    if not header:
        raise ApiKeyError(NO_API_KEY)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiKeyError("the Authorization header must be 'Bearer <key>'")
    return token.strip()


def authenticate(keys: ApiKeys, limiter: RateLimiter, header: str | None) -> Principal:
    """Steps 2-3 of the module docstring: the caller's principal (blocking: one indexed read)."""
    principal = keys.authenticate(bearer_token(header))
    limiter.take(principal.key_id)
    return principal


def require(principal: Principal, operation: str) -> None:
    """Step 4: refuse unless the principal's role may perform ``operation``."""
    if operation not in PERMISSIONS.get(principal.role, frozenset()):
        raise Forbidden(f"an API key with role {principal.role} may not {operation.replace('_', ' ')}; "
                        "ask an administrator for a key with the right role")


def sees_all(principal: Principal) -> bool:
    """Whether the principal reads every request (not only its own)."""
    return "read_all" in PERMISSIONS.get(principal.role, frozenset()) or principal.role == "executor"


def require_owner(principal: Principal, req: Request) -> None:
    """Step 5: an agent only ever sees its own requests; others' answer as if they did not exist."""
    if principal.role == "agent" and req.requester != principal.name:
        raise NotFoundError(f"no request with id {req.id!r}")

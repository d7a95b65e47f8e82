"""The HTTP service (``hitlgate serve``): a thin FastAPI layer over :mod:`hitlgate.engine`.

Every replica is stateless: requests, votes, warrants, consumed warrant ids,
idempotency keys, API keys and the audit chain live in the shared store, so
any number of ``serve`` processes can stand behind one load balancer on one
PostgreSQL. See :mod:`hitlgate.service.app` for the endpoints and
:mod:`hitlgate.service.auth` for who may call which.
"""

from __future__ import annotations

__all__: list[str] = []

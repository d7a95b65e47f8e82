"""``hitlgate.client`` against a service that is down or silent raises the library's own exception.

Before the fix a refused connection escaped as ``httpx.ConnectError``, and a
server that never answered as ``httpx.ReadTimeout``, although the README
promises the library's own exception types: an executor written against
``HitlgateError`` missed them. Both are now ``BackendUnavailable`` with code
``unreachable``, and the message says whether the request was sent at all
(a consume that timed out may have happened).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from hitlgate.client import AsyncClient, Client
from hitlgate.errors import BackendUnavailable

ACTION = {"type": "rotate_api_key", "target": "svc-payments-key", "parameters": {}}


@pytest.fixture
def closed_url() -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    # Accepts connections (the kernel's backlog) and never answers.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_refused_connection_is_backend_unavailable(closed_url: str) -> None:
    with Client(closed_url, api_key="hgk_x") as client, pytest.raises(
        BackendUnavailable, match=r"^cannot reach the hitlgate service at http://127\.0\.0\.1:\d+ \(ConnectError\): "
                                  r"the request was not sent$",
    ) as info:
        client.verify("a.b.c", ACTION, consume=True)
    assert info.value.code == "unreachable"


def test_silent_server_says_the_outcome_is_unknown(silent_url: str) -> None:
    with Client(silent_url, api_key="hgk_x", timeout=0.5) as client, pytest.raises(
        BackendUnavailable, match=r"\(ReadTimeout\): no answer came, so whether the request took effect is unknown$",
    ) as info:
        client.verify("a.b.c", ACTION, consume=True)
    assert info.value.code == "unreachable"


def test_async_client_too(closed_url: str) -> None:
    async def run() -> None:
        async with AsyncClient(closed_url, api_key="hgk_x") as client:
            await client.decide({"action": ACTION})

    with pytest.raises(BackendUnavailable, match=r"\(ConnectError\): the request was not sent$"):
        asyncio.run(run())

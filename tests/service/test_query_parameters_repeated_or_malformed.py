"""Query parameters that are not what a listing printed, or that come twice, are refused with ``invalid_query``.

A cursor that is not a listing's ``next_cursor`` names the ``cursor`` query
parameter (not the CLI's ``--cursor`` option). A single-valued parameter
sent twice (``status=pending&status=granted``) is refused naming the
parameter, rather than letting the last one silently win: a proxy or a
client library that appends a filter must not widen or change a listing
unnoticed. On the real ASGI app with a real SQLite store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.conftest import viewer_gets


@pytest.mark.parametrize("cursor", ["%FF", "x", "%00", "2026-01-01T00:00:00Z", "~req-1"])
def test_a_cursor_no_listing_printed_is_invalid_query(tmp_path: Path, cursor: str) -> None:
    [(status, body)] = viewer_gets(tmp_path, [f"/v1/requests?cursor={cursor}"])
    assert status == 400, body
    assert body["error"]["code"] == "invalid_query"
    assert body["error"]["message"].startswith("cursor: ")
    assert "--cursor" not in body["error"]["message"] and "hitlgate requests" not in body["error"]["message"]


def test_a_listings_own_cursor_still_continues(tmp_path: Path) -> None:
    [(status, first)] = viewer_gets(tmp_path, ["/v1/requests?limit=1"])
    assert status == 200 and first["next_cursor"]


@pytest.mark.parametrize(("query", "name"), [
    ("status=pending&status=granted", "status"),
    ("limit=1&limit=2", "limit"),
    ("tier=single_approval&tier=dual_approval", "tier"),
    ("target=a&target=b", "target"),
    ("requester=a&requester=b", "requester"),
    ("since=2026-01-01T00:00:00.000000Z&since=2026-01-02T00:00:00.000000Z", "since"),
    ("cursor=a&cursor=b", "cursor"),
    ("status=pending&limit=5&status=pending", "status"),  # Even the same value twice: one spelling per query.
])
def test_a_repeated_list_parameter_is_refused_naming_it(tmp_path: Path, query: str, name: str) -> None:
    [(status, body)] = viewer_gets(tmp_path, [f"/v1/requests?{query}"])
    assert status == 400, body
    assert body["error"]["code"] == "invalid_query"
    assert body["error"]["message"].startswith(f"{name}: "), body


@pytest.mark.parametrize(("query", "name"), [("wait=0&wait=1", "wait"),
                                             ("while_status=pending&while_status=granted", "while_status")])
def test_a_repeated_request_parameter_is_refused_naming_it(tmp_path: Path, query: str, name: str) -> None:
    [(status, body)] = viewer_gets(tmp_path, [f"/v1/requests/{{id}}?{query}"])
    assert status == 400, body
    assert body["error"]["code"] == "invalid_query"
    assert body["error"]["message"].startswith(f"{name}: "), body

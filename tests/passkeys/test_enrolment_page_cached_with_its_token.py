"""Threat: a shared cache (a proxy, a CDN, the browser's disk cache) keeps the enrolment page.

The page's URL carries the one-time token, and the page names the approver
and the link's expiry. Before the fix it was sent without ``Cache-Control``,
so any cache on the way could keep it, keyed by that URL, for anyone who
later reads the cache. Like every console page it is now ``no-store`` (and
may not be framed), both for a live link and for a refused one.
"""

from __future__ import annotations

from hitlgate.engine.approve.workflow import Engine
from tests.passkeys.conftest import Console


def test_enrolment_page_is_never_stored_by_a_cache(engine: Engine, console: Console) -> None:
    _enrolment, token = engine.passkeys.create_enrolment("alice")
    for path in (f"/ui/enroll/{token}", "/ui/enroll/not-a-token-at-all-but-long-enough"):
        page = console.client.get(path)
        assert page.status_code in (200, 403), page.text
        assert page.headers["cache-control"] == "no-store", path
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"

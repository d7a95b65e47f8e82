"""A page on another site cannot lock the approvers behind its NAT out of the console.

A console POST with a wrong ``Origin`` or without the CSRF header is
something any page can make a browser send: it is refused (403 ``csrf``) and
spends nothing from the client address's auth-failure bucket, nor does a
request without a session cookie. A forged session cookie or a refused
login assertion does spend it, and once it is empty is refused with 429,
while a valid session or passkey from the same address is still served.
The test client's address is the same for every browser here, as behind
one NAT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import ServerConfig
from hitlgate.engine.keys.keyring import b64url_encode
from hitlgate.service.passkeys import SESSION_COOKIE
from tests.passkeys.conftest import ORIGIN, Console, browsers_on
from tests.workflow._helpers import proposal


def test_cross_site_console_posts_do_not_lock_out_the_address(engine: Engine,
                                                             browsers: Callable[[], Console]) -> None:
    assert engine.config.server.auth_failure_burst == 20
    approver, page = browsers(), browsers()
    key = approver.enrol("alice")
    assert approver.login(key).status_code == 200
    req = engine.propose(proposal())
    vote = f"/ui/api/requests/{req.id}/vote/options"
    codes = []
    for _ in range(25):
        # What a hostile page makes the browser send: the browser's true Origin, no CSRF header.
        codes.append(page.post(vote, {"verdict": "approve"}, csrf=False, origin="https://evil.example").status_code)
        codes.append(page.post("/ui/api/login", {"credential": {}}, csrf=False,
                               origin="https://evil.example").status_code)
        codes.append(page.post("/ui/api/logout", {}, csrf=False, origin=None).status_code)
        codes.append(approver.post(vote, {"verdict": "approve"}, csrf=False).status_code)
    assert codes == [403] * 100, codes
    # No session cookie at all: a 401, every time, never a 429.
    assert [page.post(vote, {"verdict": "approve"}).status_code for _ in range(25)] == [401] * 25
    assert approver.options(req.id)["statement"]["approver"] == "alice"
    assert browsers().login(key).status_code == 200
    assert approver.vote(req.id, key).status_code == 200


@pytest.fixture
def strict(make_engine: Callable[..., Engine]) -> Iterator[Callable[[], Console]]:
    # A bucket that hardly refills during the test, so the counts are exact.
    engine = make_engine(config={"server": ServerConfig(public_url=ORIGIN, auth_failures_per_second=0.01,
                                                        auth_failure_burst=20)})
    yield from browsers_on(engine)


def test_forged_cookies_are_throttled_while_a_valid_session_is_served(strict: Callable[[], Console]) -> None:
    approver, thief = strict(), strict()
    key = approver.enrol("alice")
    assert approver.login(key).status_code == 200
    req = approver.engine.propose(proposal())
    vote = f"/ui/api/requests/{req.id}/vote/options"
    thief.client.cookies.set(SESSION_COOKIE, f"v1.{b64url_encode(b'alice')}.99999999999.{'A' * 43}",
                             domain="127.0.0.1", path="/ui")
    forged = [thief.post(vote, {"verdict": "approve"}) for _ in range(25)]
    assert [r.status_code for r in forged] == [401] * 20 + [429] * 5, [r.text for r in forged]
    assert forged[-1].json()["error"]["code"] == "rate_limited" and "Retry-After" in forged[-1].headers
    # A refused passkey assertion (no user verification) from the same address: 429 too.
    assert strict().login(key, uv=False).status_code == 429
    # The valid session and a valid login are checked first, and served.
    assert approver.options(req.id)["statement"]["approver"] == "alice"
    assert strict().login(key).status_code == 200
    assert approver.vote(req.id, key).status_code == 200

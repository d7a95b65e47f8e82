"""The console's pages against hostile content and a tampered store, without a browser.

Pages are rendered by the same functions the routes call, on a real engine
(real policy, real SQLite); the routes themselves are reached through the
real app for what needs no session (redirects, headers, static files).
The browser flows are in ``test_console_browser.py``.
"""

from __future__ import annotations

import hashlib
import html
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hitlgate.engine.approve.approvals import Statement, sign
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import load_config
from hitlgate.engine.decide.proposal import action_canonical
from hitlgate.engine.keys.keyring import load_approver_key
from hitlgate.engine.ledger.store import ListCursor
from hitlgate.service import console
from hitlgate.service.app import create_app
from tests.cli_project import Project, make_project
from tests.conftest import make_proposal

DUAL = ("revoke_secret", "svc-payments-key")
SINGLE = ("suspend_service_account", "svc-ci-runner")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("console"))


@pytest.fixture
def engine(project: Project) -> Iterator[Engine]:
    with Engine.from_config(load_config(project.config)) as eng:
        yield eng


def _text(page: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</', page, re.S)
    assert found is not None, f"no {testid} on the page"
    return html.unescape(found.group(1))


def _render(engine: Engine, request_id: str, approver: str = "alice") -> str:
    response = console.render_request(engine, approver, request_id)
    assert response.status_code == 200
    return bytes(response.body).decode()


def test_canonical_bytes_shown_are_the_bytes_the_digest_covers(engine: Engine) -> None:
    params: dict[str, Any] = {"reason": "é ü \u2028 \"quoted\"", "n": 1.5e21, "list": [3, 1, {"b": 1, "a": 2}]}
    req = engine.propose(make_proposal(*DUAL, action={"type": DUAL[0], "target": DUAL[1], "parameters": params}))
    page = _render(engine, req.id)
    shown = _text(page, "canonical").encode("utf-8")
    assert shown == action_canonical(req.action)
    assert "sha256:" + hashlib.sha256(shown).hexdigest() == req.action_digest == _text(page, "digest")
    assert 'data-testid="digest-mismatch"' not in page


def test_agent_written_html_is_escaped_everywhere(engine: Engine) -> None:
    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'</pre>'
    req = engine.propose(make_proposal(
        *SINGLE, justification=hostile,
        action={"type": SINGLE[0], "target": SINGLE[1], "parameters": {hostile: hostile}},
    ))
    page = _render(engine, req.id)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert _text(page, "justification") == hostile
    listing = bytes(console.render_pending(engine, "alice", {"target": SINGLE[1]}).body).decode()
    assert req.id in listing


def test_tampered_stored_action_is_flagged_and_not_offered_for_votes(engine: Engine) -> None:
    req = engine.propose(make_proposal(*SINGLE))
    db = sqlite3.connect(_state_file(engine))
    with db:
        row = db.execute("SELECT proposal FROM requests WHERE id = ?", (req.id,)).fetchone()
        db.execute("UPDATE requests SET proposal = ? WHERE id = ?",
                   (row[0].replace("svc-ci-runner", "svc-payments-api"), req.id))
    db.close()
    page = _render(engine, req.id)
    assert 'data-testid="digest-mismatch"' in page
    assert 'id="vote-form"' not in page
    assert "does not match its digest" in _text(page, "cannot-vote")


def _state_file(engine: Engine) -> Path:
    url = engine.config.state_url
    assert url.startswith("sqlite:///")
    return Path(url.removeprefix("sqlite:///"))


def test_requester_and_ineligible_approver_get_no_vote_buttons(engine: Engine) -> None:
    req = engine.propose(make_proposal(*DUAL, requester={"id": "Erin", "kind": "human"}))
    assert "You (erin) proposed this request" in _text(_render(engine, req.id, "erin"), "cannot-vote")
    assert "frank is not eligible" in _text(_render(engine, req.id, "frank"), "cannot-vote")
    assert 'id="vote-form"' in _render(engine, req.id, "bob")


def test_listing_pages_newest_first_and_team_search_stops_at_its_bound(engine: Engine) -> None:
    target = DUAL[1]
    made = [engine.propose(make_proposal(*DUAL)).id for _ in range(5)]
    page = console.pending_page(engine, tier=None, team=None, target=target, cursor=None, limit=2)
    assert [r.id for r in page.rows] == made[::-1][:2]
    assert page.next_cursor is not None
    second = console.pending_page(engine, tier=None, team=None, target=target,
                                  cursor=ListCursor.decode(page.next_cursor), limit=2)
    assert [r.id for r in second.rows] == made[::-1][2:4]
    payments = console.pending_page(engine, tier="dual_approval", team="team-payments", target=target,
                                    cursor=None, limit=2)
    assert [r.id for r in payments.rows] == made[::-1][:2]
    assert console.pending_page(engine, tier=None, team="team-platform", target=target, cursor=None).rows == ()
    # "ledger-sync" is in these decisions' text (a dependent workload) but names no quorum team: the
    # database's text match offers them, the quorum check drops them. A search reads a window of at
    # most its bound, says it stopped and hands back a cursor after the window, instead of reading
    # every pending request.
    bounded = console.pending_page(engine, tier=None, team="ledger-sync", target=target, cursor=None,
                                   limit=50, scan_limit=3)
    assert bounded.rows == () and bounded.scan_stopped and bounded.scanned == 3
    assert bounded.next_cursor is not None
    on = console.pending_page(engine, tier=None, team="team-payments", target=None,
                              cursor=ListCursor.decode(bounded.next_cursor), limit=50, scan_limit=3)
    assert [r.id for r in on.rows][:2] == made[::-1][3:5]


def test_bad_filters_are_a_400_page_naming_the_filter(engine: Engine) -> None:
    response = console.render_pending(engine, "alice", {"tier": "everything"})
    assert response.status_code == 400 and "tier: &#39;everything&#39; is not one of" in bytes(response.body).decode()
    for cursor in ("nonsense", "%FF", "2026-01-01T00:00:00Z", "~req-1"):
        # The query parameter's name and the HTTP API's words, not the CLI's --cursor option.
        page = bytes(console.render_pending(engine, "alice", {"cursor": cursor}).body).decode()
        assert "<p class=\"alert\">cursor: not a cursor from a listing&#39;s next_cursor (TIME~ID); start again " \
               "without cursor</p>" in page
        assert "--cursor" not in page
    assert console.render_request(engine, "alice", "req-\x00").status_code == 404
    assert console.render_request(engine, "alice", "req-nope").status_code == 404


@pytest.mark.parametrize(("query", "name"), [
    ([("tier", "single_approval"), ("tier", "dual_approval")], "tier"),
    ([("team", "team-payments"), ("team", "team-platform")], "team"),
    ([("target", "svc-ci-runner"), ("tier", "dual_approval"), ("target", "svc-payments-key")], "target"),
    ([("cursor", "a"), ("cursor", "b")], "cursor"),
    ([("tier", "dual_approval"), ("tier", "dual_approval")], "tier"),  # Even the same value twice.
    ([("target", ""), ("target", "svc-ci-runner")], "target"),  # An empty one too: one spelling per query.
])
def test_a_repeated_list_parameter_is_refused_naming_it(engine: Engine, query: list[tuple[str, str]],
                                                        name: str) -> None:
    # Not last-one-wins: a filter a proxy or a bookmark appends must not change the list unnoticed.
    response = console.render_pending(engine, "alice", query)
    assert response.status_code == 400
    assert f'<p class="alert">{name}: given more than once; send each query parameter at most once</p>' \
        in bytes(response.body).decode()


def test_list_parameters_given_once_each_are_read_from_pairs(engine: Engine) -> None:
    req = engine.propose(make_proposal(*SINGLE))
    response = console.render_pending(engine, "alice", [("tier", "single_approval"), ("target", SINGLE[1]),
                                                        ("unknown", "1"), ("unknown", "2")])
    assert response.status_code == 200 and req.id in bytes(response.body).decode()


@pytest.fixture(scope="module")
def client(project: Project) -> Iterator[TestClient]:
    with Engine.from_config(load_config(project.config)) as eng, TestClient(create_app(eng)) as c:
        yield c


@pytest.mark.parametrize("path", ["/ui", "/ui/", "/ui/requests", "/ui/requests/req-1?x=1"])
def test_pages_without_a_session_redirect_to_login(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login?next=%2Fui")


@pytest.mark.parametrize("given, kept", [
    ("/ui/requests/req-1", "/ui/requests/req-1"), ("https://evil.example/", "/ui"), ("//evil.example/ui", "/ui"),
    ("/uihack\\x", "/ui"), (None, "/ui"),
])
def test_login_page_keeps_only_console_paths_as_next(client: TestClient, given: str | None, kept: str) -> None:
    response = client.get("/ui/login", params={"next": given} if given is not None else None)
    assert response.status_code == 200
    assert f'data-next="{html.escape(kept)}"' in response.text


def test_pages_forbid_inline_script_framing_and_sniffing(client: TestClient) -> None:
    response = client.get("/ui/login")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    # Every script tag loads a file from this origin; none carries code.
    assert re.findall(r"<script(?![^>]*\bsrc=\"/ui/static/)", response.text) == []


def test_static_files_are_a_fixed_set(client: TestClient) -> None:
    js = client.get("/ui/static/console.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert js.headers["x-content-type-options"] == "nosniff"
    assert client.get("/ui/static/console.css").headers["content-type"].startswith("text/css")
    for name in ("app.py", "..%2Fapp.py", "../console.py", "templates"):
        assert client.get(f"/ui/static/{name}").status_code == 404
    assert "/ui" not in client.get("/openapi.json").json()["paths"]


def test_request_page_says_who_is_missing_and_who_voted(engine: Engine, project: Project) -> None:
    req = engine.propose(make_proposal(*DUAL, justification="leaked in build log #4411"))
    statement = Statement(req.id, req.action_digest, "approve", "alice", datetime.now(UTC))
    engine.approve(sign(statement, load_approver_key(project.keys["alice"])))
    page = _render(engine, req.id, "bob")
    assert _text(page, "quorum") == "1 of 2 approvals; missing: a member of team-payments"
    votes = page[page.index('data-testid="votes"'):page.index("</tbody>")]
    assert re.search(r"<td>alice</td><td class=\"verdict-approve\">approve<br><span class=\"small\">counted</span>"
                     r"</td>\s*<td class=\"mono nowrap\">20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC</td><td>key file</td>",
                     votes)
    assert "ledger-sync" in page and "payments-api" in page  # The blast radius: dependent workloads.
    assert _text(page, "justification") == "leaked in build log #4411"
    assert "You have voted" in _text(_render(engine, req.id, "alice"), "cannot-vote")

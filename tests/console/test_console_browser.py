"""The approvers' console end to end in a real browser: Debian's Chromium, Playwright, a CDP virtual authenticator.

One ``hitlgate serve`` process and one Chromium serve the whole module.
Each person is a browser context of their own (their own cookie jar) with a
virtual authenticator (``WebAuthn.addVirtualAuthenticator``: CTAP2, resident
keys, user verification) holding the passkey they enrolled through a
one-time link made by ``hitlgate approvers enroll``. Requests are proposed
through the HTTP API with an agent's API key, as an agent would.

The passkey routes are tested at the HTTP level with a software
authenticator in ``tests/passkeys``; here are the things only a browser
shows: the page an approver reads (the digest and the canonical bytes), the
browser's own WebAuthn checks (origin, RP ID, allowed credentials, user
verification), the console script's checks before it signs, and refusals
reaching the approver as words on the page.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hitlgate.engine.decide.proposal import action_canonical
from hitlgate.engine.ledger.audit import read_export
from tests._cli_process import HITLGATE, cli_env
from tests._require import missing

try:  # A test dependency; without it the browser tests skip locally and fail in CI (see the fixture).
    from playwright.sync_api import Page, Route
    from playwright.sync_api import expect as _expect

    from tests.console._browser import DUAL, REQUESTER, Person, World, cli, console_world, new_person
except ImportError:  # pragma: no cover - depends on the machine
    console_world = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[World]:
    """One server, one Chromium, alice, bob and the requester enrolled and signed in, for the whole module."""
    if console_world is None:
        missing("Playwright (the Python package)", "pip install -e '.[test]' installs it; no browser download "
                "is needed, the tests drive the Debian package chromium")
    with console_world(tmp_path_factory.mktemp("console-browser"), chromium) as w:
        yield w


def _open(person: Person, request_id: str) -> Page:
    page = person.page
    page.goto(f"/ui/requests/{request_id}")
    return page


def _vote_status(page: Page) -> str:
    status = page.locator("#vote-status")
    _expect(status).not_to_have_text(re.compile(r"^(|Waiting for your passkey…)$"))
    return str(status.text_content())


def test_dual_approval_in_two_browsers_then_warrant_guard_and_offline_audit(world: World, tmp_path: Path) -> None:
    req = world.propose()
    alice, bob = world.people["alice"], world.people["bob"]

    # The pending list shows the request, and leads to its page.
    alice.page.goto("/ui")
    assert int(str(alice.page.get_by_test_id("pending-count").text_content())) >= 1
    alice.page.click(f"a[href='/ui/requests/{req['id']}']")
    page = alice.page
    # The page shows the digest and the exact bytes it covers, not a paraphrase.
    digest = str(page.get_by_test_id("digest").text_content())
    canonical = str(page.get_by_test_id("canonical").text_content())
    assert digest == req["action_digest"]
    assert canonical.encode() == action_canonical(DUAL)
    assert "sha256:" + hashlib.sha256(canonical.encode()).hexdigest() == digest
    assert page.get_by_test_id("target").text_content() == "svc-payments-key"
    assert page.get_by_test_id("requester").text_content() == REQUESTER
    _expect(page.get_by_test_id("quorum")).to_have_text(
        "0 of 2 approvals; missing: someone with the role security; a member of team-payments")

    page.click("#approve")
    assert "Your approve was recorded; the request is now pending" in _vote_status(page)
    page.wait_for_load_state()
    _expect(_open(alice, req["id"]).get_by_test_id("quorum")).to_have_text(
        "1 of 2 approvals; missing: a member of team-payments")
    _expect(alice.page.get_by_test_id("cannot-vote")).to_contain_text("You have voted")

    page = _open(bob, req["id"])
    page.click("#approve")
    assert "the request is now granted" in _vote_status(page)
    assert world.votes(req["id"]) == [("alice", "approve"), ("bob", "approve")]

    # The agent fetches its warrant; the executor's guard consumes it for exactly this action.
    warrant = world.api("GET", f"/v1/requests/{req['id']}/warrant", REQUESTER)
    assert warrant.status_code == 200, warrant.text
    used = world.api("POST", "/v1/warrants/verify", "exec-1",
                     {"warrant": warrant.json()["token"], "action": DUAL, "consume": True})
    assert used.status_code == 200, used.text
    assert [a["approver"] for a in used.json()["approvals"]] == ["alice", "bob"]
    done = world.api("POST", f"/v1/requests/{req['id']}/outcome", "exec-1",
                     {"jti": used.json()["jti"], "outcome": "executed"})
    assert done.status_code == 200 and done.json()["status"] == "executed"

    # Offline: the export, the engine's public JWKS and the approvers' public keys, nothing else.
    assert cli(world.project, "audit", "checkpoint").returncode == 0
    export, jwks, keys = tmp_path / "audit.jsonl", tmp_path / "jwks.json", tmp_path / "approver-keys.json"
    made = cli(world.project, "audit", "export", "--out", str(export))
    assert made.returncode == 0, made.stderr
    jwks.write_text(httpx.get(world.url + "/.well-known/jwks.json", timeout=10).text)
    listed = cli(world.project, "approvers", "keys")
    assert listed.returncode == 0, listed.stderr
    keys.write_text(listed.stdout)
    with export.open() as fh:
        signed = [e for e in read_export(fh).events if e.kind == "approved" and e.request_id == req["id"]]
    assert [e.payload["signed"]["signature"]["type"] for e in signed] == ["webauthn", "webauthn"]
    offline = subprocess.run(
        [*HITLGATE, "--json", "audit", "verify", "--file", str(export), "--jwks", str(jwks),
         "--approver-keys", str(keys), "--require-checkpoint"],
        env=cli_env(), capture_output=True, text=True, timeout=120, check=False,
        cwd=tmp_path,  # No configuration, store or key directory here: only the three files.
    )
    assert offline.returncode == 0, offline.stderr
    report = json.loads(offline.stdout)
    assert report["ok"] is True and report["signed_votes_verified"] >= 2


def test_requester_own_passkey_gets_no_buttons_and_a_forced_vote_is_refused(world: World) -> None:
    req = world.propose()
    page = _open(world.people[REQUESTER], req["id"])
    _expect(page.get_by_test_id("cannot-vote")).to_have_text(
        f"You ({REQUESTER}) proposed this request, so you cannot vote on it.")
    assert page.locator("#approve").count() == 0
    # A script on the page asking anyway (as a hostile extension could) is refused by the server.
    answer = page.evaluate("""async (id) => {
        const r = await fetch(`/ui/api/requests/${id}/vote/options`, {method: "POST",
            headers: {"X-Hitlgate-CSRF": "1", "Content-Type": "application/json"},
            body: JSON.stringify({verdict: "approve"})});
        return [r.status, (await r.json()).error.code];
    }""", req["id"])
    assert answer == [403, "self_approval"]
    assert world.votes(req["id"]) == []


def _swap_passkey(person: Person, credential: dict[str, Any]) -> list[dict[str, Any]]:
    """Put ``credential`` in ``person``'s authenticator instead of their own; return their own, to restore."""
    own = person.credentials()
    for c in own:
        person.cdp.send("WebAuthn.removeCredential",
                        {"authenticatorId": person.authenticator, "credentialId": c["credentialId"]})
    person.cdp.send("WebAuthn.addCredential", {"authenticatorId": person.authenticator, "credential": credential})
    return own


def _restore(person: Person, own: list[dict[str, Any]]) -> None:
    person.cdp.send("WebAuthn.clearCredentials", {"authenticatorId": person.authenticator})
    for c in own:
        person.cdp.send("WebAuthn.addCredential", {"authenticatorId": person.authenticator, "credential": c})


def test_passkey_enrolled_for_someone_else_is_refused(world: World) -> None:
    req = world.propose()
    bob, alice = world.people["bob"], world.people["alice"]
    page = _open(bob, req["id"])
    own = _swap_passkey(bob, alice.credentials()[0])
    try:
        # Bob's browser holds only Alice's passkey. The vote options allow only Bob's passkeys, so
        # first the browser itself finds nothing to sign with.
        page.click("#approve")
        assert "cancelled or timed out" in _vote_status(page)

        # A page that widens the options (any passkey may answer) gets Alice's signature over
        # Bob's statement: the server refuses it, and Bob reads why.
        def widen(route: Route) -> None:
            doc = route.fetch().json()
            doc["publicKey"]["allowCredentials"] = []
            route.fulfill(json=doc)

        page.route("**/vote/options", widen)
        page.click("#approve")
        assert "is enrolled for alice, not bob: a passkey signs only for the approver it was enrolled for" \
            in _vote_status(page)
        page.unroute("**/vote/options")
    finally:
        _restore(bob, own)
    assert world.votes(req["id"]) == []


def test_assertion_for_another_request_is_refused(world: World) -> None:
    first, second = world.propose(), world.propose()
    bob = world.people["bob"]
    captured: dict[str, Any] = {}

    def capture(route: Route) -> None:
        captured.update(json.loads(str(route.request.post_data)))
        route.abort()

    page = _open(bob, first["id"])
    page.route(f"**/ui/api/requests/{first['id']}/vote", capture)
    page.click("#approve")
    _vote_status(page)
    assert captured["statement"]["request_id"] == first["id"]

    # Bob's signature over the first request's statement, sent with the second's statement.
    def replay(route: Route) -> None:
        body = json.loads(str(route.request.post_data))
        route.continue_(post_data=json.dumps({"statement": body["statement"], "credential": captured["credential"]}))

    page = _open(bob, second["id"])
    page.route(f"**/ui/api/requests/{second['id']}/vote", replay)
    page.click("#approve")
    assert "it signs a different statement" in _vote_status(page)
    # And the first request's whole vote sent to the second request's route.
    answer = page.evaluate("""async ([id, body]) => {
        const r = await fetch(`/ui/api/requests/${id}/vote`, {method: "POST",
            headers: {"X-Hitlgate-CSRF": "1", "Content-Type": "application/json"}, body: JSON.stringify(body)});
        return [r.status, (await r.json()).error.code];
    }""", [second["id"], captured])
    assert answer == [400, "request_mismatch"]
    assert world.votes(first["id"]) == [] and world.votes(second["id"]) == []


def test_user_verification_not_performed_is_refused(world: World) -> None:
    req = world.propose()
    alice = world.people["alice"]
    # Alice's session and passkey, on an authenticator that does not verify the user (no PIN, no biometric).
    careless = new_person(world.browser, world.url, "alice", user_verified=False)
    try:
        careless.context.add_cookies(alice.context.cookies())
        careless.cdp.send("WebAuthn.addCredential", {"authenticatorId": careless.authenticator,
                                                     "credential": alice.credentials()[0]})
        page = _open(careless, req["id"])
        page.click("#approve")
        # The console asks for user verification, which this authenticator cannot give: no signature.
        assert "cancelled or timed out" in _vote_status(page)
        # An assertion the browser makes without user verification (a page asking for "discouraged"
        # and sending it on) is refused by the server.
        answer = page.evaluate("""async (id) => {
            const post = (path, body) => fetch(path, {method: "POST", body: JSON.stringify(body),
                headers: {"X-Hitlgate-CSRF": "1", "Content-Type": "application/json"}});
            const offer = await (await post(`/ui/api/requests/${id}/vote/options`, {verdict: "approve"})).json();
            offer.publicKey.userVerification = "discouraged";
            const cred = await navigator.credentials.get({
                publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(offer.publicKey)});
            const r = await post(`/ui/api/requests/${id}/vote`,
                                 {statement: offer.statement, credential: cred.toJSON()});
            return [r.status, (await r.json()).error.message];
        }""", req["id"])
        assert answer[0] == 403 and "user verification was not performed" in answer[1]
    finally:
        careless.context.close()
    assert world.votes(req["id"]) == []


def test_origin_mismatch_is_refused(world: World) -> None:
    # The same server reached under another name: not the console's origin (server.public_url).
    other = world.url.replace("localhost", "127.0.0.1")
    person = new_person(world.browser, other, "alice")
    try:
        person.cdp.send("WebAuthn.addCredential", {"authenticatorId": person.authenticator,
                                                   "credential": world.people["alice"].credentials()[0]})
        page = person.page
        page.goto("/ui/login")
        page.click("#login-button")
        status = page.locator("#login-status")
        _expect(status).to_contain_text("refused: the Origin header must be " + world.url)
        assert person.context.cookies() == []
    finally:
        person.context.close()


def test_reject_needs_a_reason_and_ends_the_request(world: World) -> None:
    req = world.propose()
    page = _open(world.people["bob"], req["id"])
    page.click("#reject")
    assert _vote_status(page) == "A rejection needs a reason: say why in the box above."
    page.fill("#vote-reason", "the leaked secret was already rotated by the owner")
    page.click("#reject")
    assert "Your reject was recorded; the request is now rejected" in _vote_status(page)
    page.wait_for_load_state()
    _open(world.people["bob"], req["id"])
    _expect(page.get_by_test_id("votes")).to_contain_text("reject: the leaked secret was already rotated")
    assert world.votes(req["id"]) == [("bob", "reject")]


def test_approval_reason_typed_in_the_page_is_signed_and_kept(world: World, tmp_path: Path) -> None:
    # Regression: the approve button sent no reason, so a reason typed before it was thrown away.
    req = world.propose()
    why = "checked with the payments owner on the bridge call"
    page = _open(world.people["alice"], req["id"])
    page.fill("#vote-reason", f"  {why} ")
    page.click("#approve")
    assert "Your approve was recorded; the request is now pending" in _vote_status(page)
    page.wait_for_load_state()
    _open(world.people["alice"], req["id"])
    _expect(page.get_by_test_id("votes")).to_contain_text(f"approve: {why}")
    [vote] = world.api("GET", f"/v1/requests/{req['id']}", "viewer-1").json()["votes"]
    assert vote["approver"] == "alice"
    # `hitlgate show`, and the export an auditor verifies offline, carry it inside the signed statement.
    shown = cli(world.project, "show", req["id"])
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"alice approved at .*\n\s+because: {why}\n", shown.stdout), shown.stdout
    export = tmp_path / "audit.jsonl"
    made = cli(world.project, "audit", "export", "--request", req["id"], "--out", str(export))
    assert made.returncode == 0, made.stderr
    with export.open() as fh:
        [approved] = [e for e in read_export(fh).events if e.kind == "approved"]
    assert approved.payload["signed"]["statement"]["reason"] == why
    assert approved.payload["signed"]["signature"]["type"] == "webauthn"


def test_approval_reason_refused_or_swapped_is_not_signed(world: World) -> None:
    req = world.propose()
    page = _open(world.people["bob"], req["id"])
    # Refused as the API refuses a reason, in words on the page, and nothing is signed or recorded.
    page.fill("#vote-reason", "r" * 1001)
    page.click("#approve")
    assert _vote_status(page) == ("reason: must be a string of at most 1000 characters (this one has 1001): "
                                  "shorten it")
    page.fill("#vote-reason", "fine\tgo")
    page.click("#approve")
    assert "reason: must not contain control characters other than newlines" in _vote_status(page)

    # A server (or a script in the page) that drops the typed reason from the statement to sign:
    # the console's script refuses to sign it.
    def drop_reason(route: Route) -> None:
        body = json.loads(str(route.request.post_data))
        body.pop("reason", None)
        route.continue_(post_data=json.dumps(body))

    page.fill("#vote-reason", "checked with the owner")
    page.route("**/vote/options", drop_reason)
    page.click("#approve")
    assert _vote_status(page) == ("Refused to sign: the reason in the statement the server sent is not the one "
                                  "you typed.")
    page.unroute("**/vote/options")
    assert world.votes(req["id"]) == []


def test_pending_list_refuses_a_repeated_filter_and_names_a_bad_cursor(world: World) -> None:
    # Through the real route: the query as sent, not a dict that keeps the last value.
    page = world.people["alice"].page
    for query, said in (("tier=single_approval&tier=dual_approval",
                         "tier: given more than once; send each query parameter at most once"),
                        ("cursor=nonsense", "cursor: not a cursor from a listing's next_cursor (TIME~ID); "
                         "start again without cursor")):
        response = page.goto(f"/ui?{query}")
        assert response is not None and response.status == 400
        _expect(page.locator("p.alert")).to_have_text(said)
    response = page.goto("/ui?tier=dual_approval")
    assert response is not None and response.status == 200

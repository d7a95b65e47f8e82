"""Shared by the console's browser tests and ``scripts/screenshots``: a real server, Chromium, people with passkeys.

:func:`console_world` starts ``hitlgate serve`` on a fresh project (real
approver keys, ``server.public_url`` on ``localhost``: WebAuthn takes no IP
address as an RP ID), creates API keys with the CLI, launches Debian's
Chromium through Playwright (never a browser Playwright downloads), and gives
each person a browser context of their own with a CDP virtual authenticator
(CTAP2, resident keys, user verification) holding the passkey they enrolled
through the one-time link ``hitlgate approvers enroll`` printed; each is
signed in to the console.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, CDPSession, Page, sync_playwright
from playwright.sync_api import expect as _expect

from tests._cli_process import HITLGATE, cli_env
from tests.cli_project import Project, make_project
from tests.service._server import free_port, running_server

DUAL = {"type": "revoke_secret", "target": "svc-payments-key",
        "parameters": {"secret_version": "v7", "note": "leaked in build log <#4411> & \"quoted\""}}
#: The agent (API key principal) that proposes, and an approver who also runs an agent.
REQUESTER = "erin"
TIMEOUT_MS = 15_000


@dataclass
class Person:
    """One person's browser: a context, a page, and the virtual authenticator holding their passkey."""

    name: str
    context: BrowserContext
    page: Page
    cdp: CDPSession
    authenticator: str

    def credentials(self) -> list[dict[str, Any]]:
        """The passkeys in this person's authenticator (with their private keys: CDP exports them)."""
        return list(self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})["credentials"])


@dataclass
class World:
    """The module's server, project, API keys, browser and the people in it."""

    project: Project
    url: str
    tokens: dict[str, str]
    browser: Browser
    people: dict[str, Person]

    def api(self, method: str, path: str, who: str, body: Any = None) -> httpx.Response:
        return httpx.request(method, self.url + path, json=body, timeout=30,
                             headers={"Authorization": f"Bearer {self.tokens[who]}"})

    def propose(self, action: dict[str, Any] | None = None, *, tier: str = "dual_approval",
                justification: str = "secret leaked in CI log; rotate and revoke") -> dict[str, Any]:
        """A pending request (of ``tier``) proposed through the API by :data:`REQUESTER`'s agent key."""
        resp = self.api("POST", "/v1/requests", REQUESTER, {"action": action or DUAL, "justification": justification})
        assert resp.status_code == 201, resp.text
        doc = dict(resp.json())
        assert doc["status"] == "pending" and doc["tier"] == tier, doc
        return doc

    def votes(self, request_id: str) -> list[tuple[str, str]]:
        doc = self.api("GET", f"/v1/requests/{request_id}", "viewer-1").json()
        return [(v["approver"], v["verdict"]) for v in doc["votes"]]


def cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """``hitlgate --config PROJECT ARGS`` as a real process (the package these tests imported)."""
    return subprocess.run([*HITLGATE, "--config", str(project.config), *args], env=cli_env(), capture_output=True,
                          text=True, timeout=120, check=False)


def new_person(browser: Browser, url: str, name: str, *, user_verified: bool = True) -> Person:
    context = browser.new_context(base_url=url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": user_verified, "automaticPresenceSimulation": True,
    }})["authenticatorId"]
    return Person(name, context, page, cdp, authenticator)


def enrol(project: Project, person: Person) -> None:
    """Enrol ``person``'s passkey through the one-time link ``hitlgate approvers enroll`` prints."""
    result = cli(project, "approvers", "enroll", person.name, "--json")
    assert result.returncode == 0, result.stderr
    link = json.loads(result.stdout)["url"]
    person.page.goto(link)
    person.page.click("#enroll")
    _expect(person.page.locator("#status")).to_have_attribute("data-state", "enrolled")


def login(person: Person) -> None:
    page = person.page
    page.goto("/ui")
    assert "/ui/login" in page.url  # No session yet: the console sends the approver to sign in.
    page.click("#login-button")
    page.wait_for_url(re.compile(r"/ui$"))
    _expect(page.get_by_test_id("approver")).to_have_text(person.name)



@contextmanager
def console_world(tmp: Path, chromium: str, people: Sequence[str] = ("alice", "bob", REQUESTER)) -> Iterator[World]:
    """A running console with ``people`` enrolled and signed in, each in their own browser context."""
    project = make_project(tmp)
    port = free_port()
    # A name, not an address: WebAuthn takes no IP address as an RP ID (the browser refuses it).
    url = f"http://localhost:{port}"
    with project.config.open("a") as f:
        f.write(f"server:\n  public_url: {url}\n  rate_per_second: 1000\n  rate_burst: 1000\n")
    tokens = {}
    for name, role in ((REQUESTER, "agent"), ("exec-1", "executor"), ("viewer-1", "viewer")):
        made = cli(project, "apikey", "create", name, "--role", role, "--json")
        assert made.returncode == 0, made.stderr
        tokens[name] = json.loads(made.stdout)["token"]
    with running_server(project.config, log=tmp / "serve.log", port=port), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            world = World(project, url, tokens, browser, {})
            for name in people:
                world.people[name] = person = new_person(browser, url, name)
                enrol(project, person)
                login(person)
            yield world
        finally:
            browser.close()

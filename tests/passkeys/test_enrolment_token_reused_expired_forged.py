"""An enrolment link works once, until it expires, and only as issued; only its hash is stored."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import ApprovalError
from tests._authenticator import SoftAuthenticator
from tests.passkeys.conftest import ORIGIN, RP_ID, Console
from tests.workflow._helpers import FakeClock


def _options(console: Console, token: str) -> tuple[int, dict]:
    resp = console.post("/ui/api/enroll/options", {"token": token}, csrf=False)
    return resp.status_code, resp.json()


def test_enrolment_token_reused(engine: Engine, console: Console) -> None:
    _e, token = engine.passkeys.create_enrolment("alice")
    first = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    status, options = _options(console, token)
    assert status == 200
    assert console.post("/ui/api/enroll", {"token": token, "credential": first.create(options["publicKey"])},
                        csrf=False).status_code == 200
    status, body = _options(console, token)
    assert status == 403 and body["error"]["code"] == "enrolment_used", body
    page = console.client.get(f"/ui/enroll/{token}")
    assert page.status_code == 403 and "already used" in page.text


def test_enrolment_token_used_twice_at_once(engine: Engine, console: Console) -> None:
    # Two browsers fetched options before either finished: only one passkey is enrolled.
    _e, token = engine.passkeys.create_enrolment("alice")
    a, b = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID), SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    opts_a, opts_b = _options(console, token)[1], _options(console, token)[1]
    assert console.post("/ui/api/enroll", {"token": token, "credential": a.create(opts_a["publicKey"])},
                        csrf=False).status_code == 200
    late = console.post("/ui/api/enroll", {"token": token, "credential": b.create(opts_b["publicKey"])}, csrf=False)
    assert late.status_code == 403 and late.json()["error"]["code"] == "enrolment_used", late.text
    assert [r.key.credential_id for r in engine.passkeys.list("alice")] == [a.id]


def test_enrolment_token_expired(engine: Engine, console: Console, clock: FakeClock) -> None:
    from datetime import timedelta

    _e, token = engine.passkeys.create_enrolment("alice", ttl=timedelta(minutes=5))
    clock.advance(5 * 60)
    status, body = _options(console, token)
    assert status == 403 and body["error"]["code"] == "enrolment_expired", body


def test_enrolment_token_forged(engine: Engine, console: Console) -> None:
    engine.passkeys.create_enrolment("alice")
    status, body = _options(console, secrets.token_urlsafe(32))
    assert status == 403 and body["error"]["code"] == "enrolment_invalid", body
    page = console.client.get(f"/ui/enroll/{secrets.token_urlsafe(32)}")
    assert page.status_code == 403 and "not valid" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self'")


def test_only_the_token_hash_is_stored(engine: Engine) -> None:
    _e, token = engine.passkeys.create_enrolment("alice")
    with engine.store.read() as tx:
        stored = tx.conn.execute(sa.select(t.passkey_enrolments.c.token_hash)).scalars().all()
    assert len(stored) == 1 and token not in stored[0] and stored[0].startswith("sha256:")
    assert token not in str([e.payload for e in engine.audit_events()])


def test_enrolment_for_someone_not_in_the_inventory(engine: Engine) -> None:
    with pytest.raises(ApprovalError, match="'mallory' is not a registered approver"):
        engine.passkeys.create_enrolment("mallory")


def test_enrolment_page_has_no_inline_script(engine: Engine, console: Console) -> None:
    _e, token = engine.passkeys.create_enrolment("alice")
    page = console.client.get(f"/ui/enroll/{token}")
    assert page.status_code == 200 and "<strong id=\"approver\">alice</strong>" in page.text
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and '<script src="/ui/static/enroll.js" defer></script>' in page.text
    js = console.client.get("/ui/static/enroll.js")
    assert js.status_code == 200 and "navigator.credentials.create" in js.text

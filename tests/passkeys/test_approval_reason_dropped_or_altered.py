"""An approval's reason given in the console is signed with the passkey and kept with the vote, never dropped.

Regression: the console's approve path sent no reason, so a reason typed
before "Approve with passkey" was thrown away and the vote recorded without
it. The reason is part of the statement the passkey signs (like ``hitlgate
approve --reason`` and the HTTP API's signed statements), so it cannot be
added, dropped or changed after signing; it is refused on the terms of every
vote's reason (length, control characters), 400 ``invalid_reason``, and
nothing is recorded. On the real app and real WebAuthn, SQLite and PostgreSQL.
"""

from __future__ import annotations

import io

import pytest

from hitlgate.engine.approve.approvals import MAX_REASON_LENGTH
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.audit import read_export
from tests.passkeys.conftest import Console
from tests.workflow._helpers import proposal


def _signed_in(console: Console) -> None:
    console.login(console.enrol("alice"))


def test_an_approvals_reason_is_signed_and_kept_in_the_vote_and_the_audit_trail(engine: Engine,
                                                                                console: Console) -> None:
    _signed_in(console)
    req = engine.propose(proposal())
    why = "checked with the owner on the bridge call 👩\u200d💻"
    opts = console.options(req.id, "approve", reason=why)
    assert opts["statement"]["reason"] == why and f'"reason":"{why}"' in opts["canonical"]
    resp = console.vote(req.id, console.authenticators["alice"], "approve", reason=why)
    assert resp.status_code == 200, resp.text
    [v] = engine.get(req.id).votes
    assert v.verdict == "approve" and v.statement["statement"]["reason"] == why
    assert v.statement["signature"]["type"] == "webauthn"
    [event] = [e for e in engine.audit_events(req.id) if e.kind == "approved"]
    assert event.payload["signed"]["statement"]["reason"] == why
    # The export an auditor verifies offline carries it inside the signed statement.
    [exported] = [e for e in read_export(_export(engine, req.id)).events if e.kind == "approved"]
    assert exported.payload["signed"]["statement"]["reason"] == why
    # Checked again when counted: the passkey's signature covers the reason.
    progress, unverified = engine.checked_progress(req.id)
    assert unverified == {} and "alice" in progress.counted


def _export(engine: Engine, request_id: str) -> io.StringIO:
    """The request's audit export, as ``hitlgate audit export --request`` writes it."""
    out = io.StringIO()
    engine.export_audit(out, request_id=request_id)
    out.seek(0)
    return out


def test_an_approval_without_a_reason_signs_none(engine: Engine, console: Console) -> None:
    _signed_in(console)
    req = engine.propose(proposal())
    for given in (None, "", "   "):
        assert "reason" not in console.options(req.id, "approve", reason=given)["statement"]
    resp = console.vote(req.id, console.authenticators["alice"], "approve", reason="  ")
    assert resp.status_code == 200, resp.text
    assert "reason" not in engine.get(req.id).votes[0].statement["statement"]


@pytest.mark.parametrize("change", ["added", "altered", "dropped"])
def test_a_reason_changed_after_signing_is_refused(engine: Engine, console: Console, change: str) -> None:
    _signed_in(console)
    req = engine.propose(proposal())
    opts = console.options(req.id, "approve", reason=None if change == "added" else "checked with the owner")
    credential = console.authenticators["alice"].get(opts["publicKey"])
    statement = dict(opts["statement"])
    if change == "dropped":
        del statement["reason"]
    else:
        statement["reason"] = "approved by the CISO"
    resp = console.post(f"/ui/api/requests/{req.id}/vote", {"statement": statement, "credential": credential})
    assert resp.status_code == 403, resp.text
    assert "it signs a different statement" in resp.json()["error"]["message"]
    assert engine.get(req.id).votes == ()


@pytest.mark.parametrize(("verdict", "reason", "said"), [
    ("approve", "r" * (MAX_REASON_LENGTH + 1),
     f"reason: must be a string of at most {MAX_REASON_LENGTH} characters (this one has {MAX_REASON_LENGTH + 1})"),
    ("reject", "r" * (MAX_REASON_LENGTH + 1), f"at most {MAX_REASON_LENGTH} characters"),
    ("approve", "fine\x1b[2J\x1b[Hgrace approved", "reason: must not contain control characters other than newlines"),
    ("approve", "ok\tgo", "control characters"),
    ("approve", "ok\rgrace approved", "control characters"),
    ("approve", "approved \u202edelbane", "control characters"),
    ("reject", "no\u2028bob approved", "control characters"),
    ("approve", "ok\x85", "control characters"),  # C1 NEL: Python's strip() would drop it unseen; refused instead.
])
def test_a_reason_the_api_would_refuse_is_refused_in_words(engine: Engine, console: Console, verdict: str,
                                                          reason: str, said: str) -> None:
    _signed_in(console)
    req = engine.propose(proposal())
    resp = console.post(f"/ui/api/requests/{req.id}/vote/options", {"verdict": verdict, "reason": reason})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_reason" and said in error["message"]
    assert "\n" not in error["message"]  # One line: the page shows it as it is.
    assert engine.get(req.id).votes == ()


def test_a_reason_of_the_largest_length_is_signed(engine: Engine, console: Console) -> None:
    _signed_in(console)
    req = engine.propose(proposal())
    resp = console.vote(req.id, console.authenticators["alice"], "approve", reason="r" * MAX_REASON_LENGTH)
    assert resp.status_code == 200, resp.text
    assert engine.get(req.id).votes[0].statement["statement"]["reason"] == "r" * MAX_REASON_LENGTH

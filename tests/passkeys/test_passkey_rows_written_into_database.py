"""Threat: someone who can write the database (not the engine's key directory) makes passkeys of their own.

Ed25519 approver keys come from the trusted inventory, so such a writer
cannot forge an approval (``tests/workflow/test_forged_vote_row.py``). The
passkey registry lives in the database: before the fix the writer could
insert a ``passkey_credentials`` row binding their own authenticator to bob,
then vote as bob through the engine, or insert bob's "passkey-signed" vote
row and let an honest second vote grant the request; the grant, the warrant
and the guard all re-verified the assertion against the row the writer had
written. They could also insert an enrolment link for bob with a token of
their own, or point an existing row at another approver.

Now each credential row carries an HMAC under a secret beside the engine
keys (``passkeys.key``) over everything a verification trusts (credential
id, approver, public key, RP ID, origin), and each enrolment token carries
an HMAC over its approver and expiry: a row the engine did not write is
refused wherever it would count.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.keys.keyring import b64url_encode
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import ApprovalError, StorageError
from tests._authenticator import SoftAuthenticator
from tests.passkeys._vote import passkey_signed
from tests.passkeys.conftest import ORIGIN, RP_ID, Console
from tests.workflow._helpers import T0, proposal, vote


def _insert_credential(engine: Engine, approver: str, auth: SoftAuthenticator) -> None:
    with engine.store.engine.begin() as conn:
        conn.execute(t.passkey_credentials.insert().values(
            credential_id=auth.id, approver=approver, public_key=b64url_encode(auth._cose()), rp_id=RP_ID,
            origin=ORIGIN, sign_count=0, created_at=T0, last_used_at=None, revoked_at=None))


def _insert_vote_row(engine: Engine, request_id: str, approver: str, statement: dict[str, object]) -> None:
    with engine.store.engine.begin() as conn:
        conn.execute(t.votes.insert().values(request_id=request_id, approver=approver, verdict="approve",
                                             statement=json.dumps(statement, sort_keys=True),
                                             signed_at=T0, recorded_at=T0))


def test_credential_row_inserted_for_another_approver_signs_nothing(engine: Engine, console: Console) -> None:
    console.enrol("alice")  # The registry is in use: the binding key exists.
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    attacker = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID)
    _insert_credential(engine, "bob", attacker)
    with pytest.raises(ApprovalError, match=r"bob's passkey .* was not enrolled by this engine") as exc:
        engine.approve(passkey_signed(engine, req, "bob", attacker))
    assert exc.value.code == "passkey_forged"
    # The vote row written straight in does not help an honest vote grant either.
    _insert_vote_row(engine, req.id, "bob", passkey_signed(engine, req, "bob", attacker).to_dict())
    with pytest.raises(StorageError, match=r"the stored approval by bob does not verify.*not enrolled by this "
                                           r"engine.*written into the database, not cast$") as stored:
        vote(engine, req, "grace")
    assert stored.value.code == "forged_vote"


def test_enrolled_credential_rebound_to_another_approver_signs_nothing(engine: Engine, console: Console) -> None:
    alice = console.enrol("alice")
    with engine.store.engine.begin() as conn:
        conn.execute(t.passkey_credentials.update().values(approver="bob"))
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    with pytest.raises(ApprovalError, match=r"bob's passkey .* was not enrolled by this engine") as exc:
        engine.approve(passkey_signed(engine, req, "bob", alice))
    assert exc.value.code == "passkey_forged"
    assert console.login(alice).status_code == 403


def test_granted_with_a_passkey_then_its_row_swapped_no_warrant(engine: Engine, console: Console) -> None:
    bob = console.enrol("bob")
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    engine.approve(passkey_signed(engine, req, "bob", bob))
    assert vote(engine, req, "grace").status == "granted"
    # The writer swaps in a key of their own and re-signs bob's stored vote with it.
    attacker = SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID, credential_id=bob.credential_id)
    forged = passkey_signed(engine, req, "bob", attacker)
    with engine.store.engine.begin() as conn:
        conn.execute(t.passkey_credentials.update().values(public_key=b64url_encode(attacker._cose())))
        conn.execute(t.votes.update().where(t.votes.c.approver == "bob")
                     .values(statement=json.dumps(forged.to_dict(), sort_keys=True)))
    with pytest.raises(StorageError, match=r"the stored approval by bob does not verify.*not enrolled by this "
                                           r"engine") as exc:
        engine.warrant(req.id)
    assert exc.value.code == "forged_vote"


def test_enrolment_link_inserted_or_rebound_in_the_database_is_refused(engine: Engine, console: Console) -> None:
    console.enrol("alice")
    token = "attacker-chosen-token-of-forty-characters"
    with engine.store.engine.begin() as conn:
        conn.execute(t.passkey_enrolments.insert().values(
            token_hash="sha256:" + hashlib.sha256(token.encode()).hexdigest(), approver="bob", created_at=engine.now(),
            expires_at=engine.now().replace(year=2099), used_at=None))
    resp = console.post("/ui/api/enroll/options", {"token": token}, csrf=False)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "enrolment_invalid", resp.text
    # A real link for carol, pointed at bob in the database.
    _enrolment, real = engine.passkeys.create_enrolment("carol")
    with engine.store.engine.begin() as conn:
        conn.execute(t.passkey_enrolments.update().where(t.passkey_enrolments.c.approver == "carol")
                     .values(approver="bob"))
    resp = console.post("/ui/api/enroll/options", {"token": real}, csrf=False)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "enrolment_invalid", resp.text
    assert engine.passkeys.list("bob") == []


def test_approvers_keys_never_exports_a_credential_row_written_into_the_database(engine: Engine,
                                                                                 console: Console) -> None:
    console.enrol("alice")
    assert [r.key.approver for r in engine.passkeys.list(verify=True)] == ["alice"]
    _insert_credential(engine, "bob", SoftAuthenticator(origin=ORIGIN, rp_id=RP_ID))
    with pytest.raises(ApprovalError, match=r"bob's passkey .* was not enrolled by this engine") as exc:
        engine.passkeys.list(verify=True)
    assert exc.value.code == "passkey_forged"


def test_revoked_passkey_un_revoked_in_the_database_signs_nothing(engine: Engine, console: Console) -> None:
    bob = console.enrol("bob")
    engine.passkeys.revoke(bob.id)
    assert [r.revoked_at is not None for r in engine.passkeys.list(verify=True)] == [True]
    with engine.store.engine.begin() as conn:
        conn.execute(t.passkey_credentials.update().values(revoked_at=None))
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    with pytest.raises(ApprovalError, match=r"bob's passkey .* was not enrolled by this engine") as exc:
        engine.approve(passkey_signed(engine, req, "bob", bob))
    assert exc.value.code == "passkey_forged"
    assert console.login(bob).status_code == 403

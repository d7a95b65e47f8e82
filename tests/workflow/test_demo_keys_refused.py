"""Threat: the example inventory's demo keys (derived from a public seed) approve for real.

Anyone can compute the demo keys, so outside ``hitlgate demo`` an approval,
rejection or revocation signed with one is refused with code ``demo_key``,
also when a project made by ``hitlgate init`` still registers them, and a
store written in demo mode yields no warrant to a real engine.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.approve.approvals import Statement, sign
from hitlgate.engine.decide.inventory import encode_public_key
from hitlgate.engine.keys.keyring import public_raw
from hitlgate.errors import ApprovalError
from tests.workflow._helpers import demo_key, proposal, signed


def test_demo_key_approval_is_refused_outside_demo_mode(make_engine):
    engine = make_engine(demo=False)
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(ApprovalError, match="carol's registered key is a demo key") as info:
        engine.approve(signed(req, "carol", at=engine.now()))
    assert info.value.code == "demo_key"
    assert engine.get(req.id).status == "pending" and engine.get(req.id).votes == ()


def test_demo_key_rejection_and_revocation_are_refused(make_engine):
    engine = make_engine(demo=False)
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(ApprovalError, match="demo key"):
        engine.reject(signed(req, "alice", "reject", at=engine.now()))
    with pytest.raises(ApprovalError, match="demo key"):
        engine.revoke(req.id, by="alice", signed=signed(req, "alice", "reject", at=engine.now()))
    assert engine.get(req.id).status == "pending"


def test_a_demo_key_under_another_name_is_still_refused(make_engine, pack_copy):
    # Renaming an example approver does not hide that anyone can sign as them.
    inv = pack_copy / "data" / "inventory.yaml"
    inv.write_text(inv.read_text().replace("  carol:\n", "  carla:\n"))
    engine = make_engine(pack=pack_copy, demo=False)
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    statement = Statement(req.id, req.action_digest, "approve", "carla", engine.now())
    with pytest.raises(ApprovalError, match="carla's registered key is a demo key"):
        engine.approve(sign(statement, demo_key("carol")))


def _carol_with_a_real_key(make_engine, pack_copy):
    """A non-demo engine on a pack where carol's demo key is replaced by a real one; the engine and her key."""
    inv = pack_copy / "data" / "inventory.yaml"
    real = Ed25519PrivateKey.generate()
    demo_public = encode_public_key(public_raw(demo_key("carol").public_key()))
    inv.write_text(inv.read_text().replace(demo_public, encode_public_key(public_raw(real.public_key()))))
    return make_engine(pack=pack_copy, demo=False), real


def test_a_real_key_counts_outside_demo_mode(make_engine, pack_copy):
    engine, real = _carol_with_a_real_key(make_engine, pack_copy)
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert engine.approve(signed(req, "carol", at=engine.now(), key=real)).status == "granted"
    assert engine.warrant(req.id).token.count(".") == 2


def test_demo_mode_votes_yield_no_warrant_to_a_real_engine(make_engine):
    demo = make_engine(demo=True)
    req = demo.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert demo.approve(signed(req, "carol", at=demo.now())).status == "granted"
    real = make_engine(demo=False)
    with pytest.raises(ApprovalError, match="carol's registered key is a demo key"):
        real.warrant(req.id)


def test_own_key_against_a_registered_demo_key_names_the_cause(make_engine):
    # carol generated her own key but the inventory still registers the
    # starter's demo key: the refusal says so and what to do, word for word.
    engine = make_engine(demo=False)
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(ApprovalError) as info:
        engine.approve(signed(req, "carol", at=engine.now(), key=Ed25519PrivateKey.generate()))
    assert info.value.code == "demo_key"
    # The signature's own refusal first, then the cause.
    assert str(info.value) == (
        "signature of carol's approve does not verify against carol's registered key (signed by another key, "
        "or the statement was altered after signing); carol's registered key is the starter's demo key "
        "(derived from a public seed): register your own with `hitlgate keys generate --out "
        "~/.hitlgate/carol.pem` and put the public key it prints under approvers.carol.public_key in your "
        "project's inventory (`hitlgate init DIR` writes a project; the bundled example's inventory is not yours "
        "to edit)"
    )


def test_the_demo_key_of_a_new_approver_name_is_recognised_too(make_engine, pack_copy):
    # "zed" is not an example approver, but a key derived from the public
    # seed for "zed" is just as public.
    inv = pack_copy / "data" / "inventory.yaml"
    zed = encode_public_key(public_raw(demo_key("zed").public_key()))
    inv.write_text(inv.read_text().replace(
        "approvers:\n", f'approvers:\n  zed:\n    roles: [security]\n    teams: []\n    public_key: "{zed}"\n', 1))
    engine = make_engine(pack=pack_copy, demo=False)
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(ApprovalError, match="zed's registered key is the starter's demo key") as info:
        engine.approve(signed(req, "zed", at=engine.now(), key=Ed25519PrivateKey.generate()))
    assert info.value.code == "demo_key"


def test_a_wrong_signature_against_a_real_key_gets_no_demo_hint(make_engine, pack_copy):
    engine, _ = _carol_with_a_real_key(make_engine, pack_copy)
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(ApprovalError, match="does not verify") as info:
        engine.approve(signed(req, "carol", at=engine.now(), key=Ed25519PrivateKey.generate()))
    assert "demo key" not in str(info.value) and info.value.code != "demo_key"

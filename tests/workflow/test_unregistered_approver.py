"""Threat: someone not in the inventory (or not with the registered key) approves."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.errors import ApprovalError
from tests.workflow._helpers import proposal, signed


def test_unknown_name_is_refused(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(ApprovalError, match="not a registered approver"):
        engine.approve(signed(req, "mallory", at=engine.now(), key=Ed25519PrivateKey.generate()))
    assert engine.get(req.id).votes == ()


def test_registered_name_with_an_unregistered_key_is_refused(engine):
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(ApprovalError, match="does not verify"):
        engine.approve(signed(req, "carol", at=engine.now(), key=Ed25519PrivateKey.generate()))
    assert engine.get(req.id).status == "pending"


def test_registered_but_ineligible_approver_is_refused(engine):
    # frank is on team-data: neither security nor team-platform.
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(ApprovalError, match="not eligible"):
        engine.approve(signed(req, "frank", at=engine.now()))
    assert engine.get(req.id).votes == ()


def test_approver_removed_from_inventory_no_longer_counts(make_engine, pack_copy):
    import yaml

    eng = make_engine(pack=pack_copy)
    req = eng.propose(proposal("suspend_service_account", "svc-ci-runner"))
    inv = pack_copy / "data" / "inventory.yaml"
    doc = yaml.safe_load(inv.read_text())
    del doc["approvers"]["carol"]
    inv.write_text(yaml.safe_dump(doc))
    with pytest.raises(ApprovalError, match="not a registered approver"):
        eng.approve(signed(req, "carol", at=eng.now()))

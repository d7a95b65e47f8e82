"""Threat: one public key registered under two approver names fills both slots of a dual approval.

Whoever holds alice's private key could sign as alice and as bob if the
inventory registered that key for both; the quorum would count two people.
The inventory loader refuses a key registered twice, naming both names.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hitlgate.engine.decide.inventory import load_inventory
from hitlgate.errors import ValidationError
from tests.workflow._helpers import demo_key, proposal, signed

ALICE_KEY = "ed25519:c1bpoYKeFU0Tt4ZOh16T2S5gTr_zwlnqpCqx7mhizMM"
BOB_KEY = "ed25519:FITpfL6TukMUlmYnSQj-VRDdeF559JOuD_3P6EdrCI8"


def _give_bob_alices_key(pack: Path) -> None:
    inv = pack / "data" / "inventory.yaml"
    text = inv.read_text()
    assert text.count(BOB_KEY) == 1
    inv.write_text(text.replace(BOB_KEY, ALICE_KEY))


def test_inventory_with_one_key_under_two_names_is_refused(pack_copy: Path) -> None:
    _give_bob_alices_key(pack_copy)
    with pytest.raises(ValidationError, match=r"approvers\.bob\.public_key: the same key is already registered "
                                              r"for alice; alice and bob must each have their own key"):
        load_inventory([pack_copy / "data"])


def test_one_key_cannot_sign_for_two_slots(make_engine, pack_copy: Path) -> None:
    engine = make_engine(pack=pack_copy)
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    assert req.tier == "dual_approval"
    _give_bob_alices_key(pack_copy)
    alice = demo_key("alice")
    for name in ("alice", "bob"):
        with pytest.raises(ValidationError, match="alice and bob must each have their own key"):
            engine.approve(signed(req, name, at=engine.now(), key=alice))
    after = engine.get(req.id)
    assert after.status == "pending" and after.votes == ()

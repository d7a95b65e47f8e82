"""Threat: an approver turns out to be compromised after their approval was granted into a warrant.

Before the fix, removing them from the inventory did not stop a warrant
already issued on their vote. The guard now re-checks that the approvals
inside the warrant still meet the quorum with today's inventory: each
approver still registered, their signature valid under the key registered
for them today, their roles and teams still filling the slots (guard.py,
check 7). Approvals beyond the quorum may lapse without effect.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.decide.inventory import encode_public_key
from hitlgate.engine.keys.keyring import public_raw
from hitlgate.errors import InvalidWarrant
from tests.workflow._helpers import granted_warrant, proposal

CAROL = """  carol:
    roles: []
    teams: [team-platform]
    public_key: "ed25519:eWl-vHaqhaH-HrBEbUfM7VlRAAv4eWtJg1dA2nsVEo8"
"""
DOC = proposal("suspend_service_account", "svc-ci-runner")


def _edit_inventory(pack: Path, new_carol: str) -> None:
    inv = pack / "data" / "inventory.yaml"
    text = inv.read_text()
    assert text.count(CAROL) == 1
    inv.write_text(text.replace(CAROL, new_carol))


@pytest.fixture
def granted(make_engine: Any, pack_copy: Path) -> tuple[Any, str]:
    engine = make_engine(pack=pack_copy)
    req, token = granted_warrant(engine, DOC, ("carol",))
    assert req.tier == "single_approval"
    return engine, token


def test_unchanged_inventory_still_runs(granted: tuple[Any, str]) -> None:
    engine, token = granted
    runs: list[Any] = []
    engine.guard().execute(token, DOC["action"], runs.append)
    assert len(runs) == 1


def test_approver_removed_after_the_grant_stops_the_warrant(granted: tuple[Any, str], pack_copy: Path) -> None:
    engine, token = granted
    _edit_inventory(pack_copy, "")
    runs: list[Any] = []
    with pytest.raises(InvalidWarrant, match=r"its approvals no longer meet the quorum with today's inventory "
                                             r"\(carol is no longer a registered approver\): 0 of 1 approval") as exc:
        engine.guard().execute(token, DOC["action"], runs.append)
    assert exc.value.code == "approval_withdrawn" and runs == []
    assert engine.get(engine.list()[0].id).status == "granted"


def test_approver_key_replaced_after_the_grant_stops_the_warrant(granted: tuple[Any, str], pack_copy: Path) -> None:
    engine, token = granted
    # The same name under a new key: the old key (and what it signed) is withdrawn.
    new_key = encode_public_key(public_raw(Ed25519PrivateKey.generate().public_key()))
    _edit_inventory(pack_copy, CAROL.replace("ed25519:eWl-vHaqhaH-HrBEbUfM7VlRAAv4eWtJg1dA2nsVEo8", new_key))
    with pytest.raises(InvalidWarrant, match="carol's approval does not verify against the key registered for "
                                             "carol today"):
        engine.guard().check(token, DOC["action"])


def test_approver_moved_out_of_the_team_stops_the_warrant(granted: tuple[Any, str], pack_copy: Path) -> None:
    engine, token = granted
    _edit_inventory(pack_copy, CAROL.replace("team-platform", "team-data"))
    with pytest.raises(InvalidWarrant, match=r"no longer meet the quorum with today's inventory: 0 of 1 approval; "
                                             r"missing: someone with the role security or a member of team-platform"):
        engine.guard().check(token, DOC["action"])


DUAL = proposal("rotate_api_key", "svc-payments-key")


def _without(text: str, name: str) -> str:
    """The inventory text without approver ``name``'s entry (its line and the indented lines under it)."""
    out = re.sub(rf"(?m)^  {name}:\n(?:    .*\n)+", "", text)
    assert out != text
    return out


def _with_new_key(text: str, name: str) -> str:
    """The inventory text with approver ``name`` registered under a freshly generated key."""
    new_key = encode_public_key(public_raw(Ed25519PrivateKey.generate().public_key()))
    out = re.sub(rf'(?m)(^  {name}:\n(?:    .*\n)*?    public_key: )"[^"]+"', rf'\1"{new_key}"', text)
    assert out != text
    return out


@pytest.mark.parametrize(("edit", "lapsed"), [
    (_without, "{} is no longer a registered approver"),
    (_with_new_key, "{}'s approval does not verify against the key registered for {} today"),
], ids=["both-removed", "both-rekeyed"])
def test_every_lapsed_approval_of_a_dual_warrant_is_named(
    make_engine: Any, pack_copy: Path, edit: Any, lapsed: str
) -> None:
    # An approver removed or re-keyed does not stop the guard from looking at the next approval: the
    # refusal names each one that lapsed, and is recorded against the request with the digest presented.
    engine = make_engine(pack=pack_copy)
    req, token = granted_warrant(engine, DUAL, ("erin", "alice"))
    assert req.tier == "dual_approval"
    names = [a["approver"] for a in engine.guard().check(token, DUAL["action"]).approvals]
    assert sorted(names) == ["alice", "erin"]
    inv = pack_copy / "data" / "inventory.yaml"
    inv.write_text(edit(edit(inv.read_text(), "erin"), "alice"))
    why = "; ".join(lapsed.format(n, n) for n in names)
    with pytest.raises(InvalidWarrant, match=rf"^invalid warrant: its approvals no longer meet the quorum with today's "
                                             rf"inventory \({re.escape(why)}\): 0 of 2 approvals") as exc:
        engine.guard().execute(token, DUAL["action"], lambda _a: None)
    assert exc.value.code == "approval_withdrawn"
    refusal = engine.audit_events(req.id)[-1]
    assert refusal.kind == "warrant_refused"
    assert refusal.payload["presented_digest"] == req.action_digest

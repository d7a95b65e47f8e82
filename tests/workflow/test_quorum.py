"""Quorum matching: a person fills at most one slot; maximum matching, not greedy."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.approve.quorum import QuorumProgress, assess, require_eligible, require_met
from hitlgate.engine.decide.decision import Quorum, QuorumSlot
from hitlgate.engine.decide.inventory import Approver
from hitlgate.errors import ApprovalError

KEY = Ed25519PrivateKey.generate().public_key()
SEC = QuorumSlot(("security",), ())
PAY = QuorumSlot((), ("team-payments",))


def person(name, roles=(), teams=()):
    return Approver(name, frozenset(roles), frozenset(teams), KEY)


ALICE = person("alice", ["security"], ["team-security"])
BOB = person("bob", [], ["team-payments"])
ERIN = person("erin", ["security"], ["team-payments", "team-security"])
GRACE = person("grace", ["security"], ["team-security"])
FRANK = person("frank", [], ["team-data"])
DUAL = Quorum(2, (SEC, PAY))


def test_one_person_in_both_groups_fills_one_slot():
    r = assess(DUAL, [ERIN])
    assert r.count == 1 and not r.met and len(r.missing_slots) == 1


def test_matching_reassigns_instead_of_greedy():
    r = assess(DUAL, [ERIN, ALICE])
    assert r.met and dict(r.assignment) == {0: "alice", 1: "erin"}


def test_order_does_not_matter():
    for order in ([ALICE, ERIN], [ERIN, ALICE], [ERIN, GRACE, ALICE]):
        assert assess(DUAL, order).met


def test_two_of_the_same_slot_do_not_meet_a_mixed_quorum():
    r = assess(DUAL, [ALICE, GRACE])
    assert not r.met and r.not_counted == ("grace",)
    assert r.describe() == "1 of 2 approvals; missing: a member of team-payments"


def test_same_name_twice_counts_once():
    assert assess(Quorum(2, (SEC, SEC)), [ALICE, ALICE]).count == 1


def test_extra_approvals_beyond_slots():
    q = Quorum(3, (SEC,))
    r = assess(q, [ALICE, FRANK])
    assert r.count == 2 and not r.met and r.missing_any == 1
    assert "1 more registered approver" in r.describe()
    assert assess(q, [ALICE, FRANK, BOB]).met


def test_empty_quorum_is_never_met():
    assert not assess(Quorum(0, ()), []).met


def test_progress_report_for_uis():
    r = assess(DUAL, [])
    assert r.describe() == (
        "0 of 2 approvals; missing: someone with the role security; a member of team-payments"
    )
    d = assess(DUAL, [BOB]).to_dict()
    assert d["count"] == 1 and d["slots"][1]["filled_by"] == "bob"
    assert d["missing"] == ["someone with the role security"]


def test_raising_checks():
    with pytest.raises(ApprovalError, match="quorum not met"):
        require_met(DUAL, [ERIN])
    assert require_met(DUAL, [ERIN, GRACE]).met
    with pytest.raises(ApprovalError, match="^frank is not eligible for this request: it needs someone with the role "
                                            "security; a member of team-payments$"):
        require_eligible(DUAL, FRANK)
    require_eligible(DUAL, BOB)
    with pytest.raises(ApprovalError, match="^this request takes no approvals$"):
        require_eligible(Quorum(0, ()), ALICE)


def test_larger_matching_needs_augmenting_paths():
    # Slots: A, B, C; people fill [A,B], [A], [B,C] in an order where greedy fails.
    a, b, c = QuorumSlot(("a",), ()), QuorumSlot(("b",), ()), QuorumSlot(("c",), ())
    p1 = person("p1", ["a", "b"])
    p2 = person("p2", ["a"])
    p3 = person("p3", ["b", "c"])
    r = assess(Quorum(3, (a, b, c)), [p1, p2, p3])
    assert r.met and dict(r.assignment) == {0: "p2", 1: "p1", 2: "p3"}


def test_met_quorum_names_who_it_counted():
    assert assess(DUAL, [ALICE, BOB]).describe() == "2 of 2 approvals; quorum met (alice, bob)"


def test_a_report_with_one_person_in_two_slots_is_refused():
    # The matching never builds one; a report built by hand (or from a tampered store) is refused by name.
    with pytest.raises(ValueError, match="^a person may fill at most one slot$"):
        QuorumProgress(required=2, slots=(SEC, PAY), assignment={0: "erin", 1: "erin"})

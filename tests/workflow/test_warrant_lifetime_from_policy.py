"""Threat: a policy's approval window or warrant lifetime stretches a grant, or a broken value slips through.

The decision carries both durations per tier (``ttl_seconds``, the approval
window; ``warrant_ttl_seconds``, the warrant lifetime from the grant). The
contract: a value out of range, of the wrong type, or a window of zero on a
tier that needs approval breaks the contract and fails closed (deny,
``policy_broken``); a warrant lifetime the policy leaves out falls back to
``warrant_ttl_seconds`` in the configuration. The warrant's ``exp`` is the
grant plus the shortest lifetime of the stored decision and the policy's
answer now, so a pack changed after the grant never stretches it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from hitlgate.engine import Config, Decider
from hitlgate.engine.decide.decision import Decision
from hitlgate.errors import PolicyError
from tests.conftest import make_proposal
from tests.workflow._helpers import proposal, vote

SINGLE = ("suspend_service_account", "svc-ci-runner")


def _set_lifetimes(pack: Path, table: str) -> None:
    """Replace the pack's warrant_ttl_by_tier rule body with ``table`` (Rego object text)."""
    path = pack / "decision.rego"
    text = path.read_text()
    text, n = re.subn(r"warrant_ttl_by_tier := \{[^}]*\}", f"warrant_ttl_by_tier := {table}", text)
    assert n == 1
    path.write_text(text)


def _drop_lifetime(pack: Path) -> None:
    path = pack / "decision.rego"
    text = path.read_text()
    line = '\t"warrant_ttl_seconds": warrant_ttl_by_tier[tier],\n'
    assert line in text
    path.write_text(text.replace(line, ""))


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('{"auto_allow": 300, "single_approval": 5, "dual_approval": 900, "deny": 0}', "of 5; it must be 10 to 3600"),
        ('{"auto_allow": 300, "single_approval": 7200, "dual_approval": 900, "deny": 0}',
         "greater than the maximum of 3600"),
        ('{"auto_allow": 300, "single_approval": "600", "dual_approval": 900, "deny": 0}', "is not of type 'integer'"),
        ('{"auto_allow": 300, "single_approval": 600.5, "dual_approval": 900, "deny": 0}', "is not of type 'integer'"),
        ('{"auto_allow": 300, "single_approval": -1, "dual_approval": 900, "deny": 0}', "less than the minimum of 0"),
    ],
)
def test_invalid_warrant_lifetime_fails_closed(pack_config: Config, pack_copy: Path, table: str, problem: str) -> None:
    _set_lifetimes(pack_copy, table)
    decision = Decider.from_config(pack_config).decide(make_proposal(*SINGLE))
    assert decision.tier == "deny"
    assert decision.fail_closed is not None and decision.fail_closed["code"] == "policy_broken"
    assert problem in decision.reasons[0]


def test_a_deny_with_a_warrant_lifetime_fails_closed() -> None:
    doc = Decision.failed_closed("x").to_dict()
    doc.pop("fail_closed")
    doc["warrant_ttl_seconds"] = 300
    with pytest.raises(PolicyError, match="tier deny yields no warrant, but warrant_ttl_seconds is 300"):
        Decision.from_policy_output({k: v for k, v in doc.items() if k != "policy_revision"}, doc["policy_revision"])


def test_zero_approval_window_on_an_approval_tier_fails_closed(pack_config: Config, pack_copy: Path) -> None:
    path = pack_copy / "decision.rego"
    text = path.read_text()
    assert '"single_approval": 3600,' in text
    path.write_text(text.replace('"single_approval": 3600,', '"single_approval": 0,', 1))
    decision = Decider.from_config(pack_config).decide(make_proposal(*SINGLE))
    assert decision.tier == "deny"
    assert "approval window (ttl_seconds) of 0; it needs at least 1 second" in decision.reasons[0]


def test_approval_window_over_thirty_days_fails_closed(pack_config: Config, pack_copy: Path) -> None:
    path = pack_copy / "decision.rego"
    path.write_text(path.read_text().replace('"single_approval": 3600,', '"single_approval": 2592001,', 1))
    decision = Decider.from_config(pack_config).decide(make_proposal(*SINGLE))
    assert (decision.tier, decision.fail_closed and decision.fail_closed["code"]) == ("deny", "policy_broken")
    assert "greater than the maximum of 2592000" in decision.reasons[0]


def test_bundled_pack_gives_each_tier_its_window_and_lifetime(example_decider: Decider) -> None:
    got = {}
    for action, target in (("rotate_api_key", "svc-payments-key"), SINGLE, ("rotate_api_key", "dev-analytics-key"),
                           ("revoke_secret", "root-ca-key")):
        d = example_decider.decide(make_proposal(action, target))
        got[d.tier] = (d.ttl_seconds, d.warrant_ttl_seconds, d.to_dict()["warrant_ttl_seconds"])
    assert got == {"dual_approval": (7200, 900, 900), "single_approval": (3600, 600, 600),
                   "auto_allow": (300, 300, 300), "deny": (0, 0, 0)}


def test_missing_lifetime_falls_back_to_the_configured_one(make_engine, pack_copy: Path, clock) -> None:
    _drop_lifetime(pack_copy)
    engine = make_engine(pack=pack_copy, config={"warrant_ttl_seconds": 120})
    req = engine.propose(proposal(*SINGLE))
    assert req.decision.warrant_ttl_seconds is None
    assert "warrant_ttl_seconds" not in req.decision.to_dict()
    granted_at = clock.advance(30)
    req = vote(engine, req, "carol")
    assert req.expires_at == granted_at + timedelta(seconds=120)
    clock.advance(60)
    assert engine.warrant(req.id).expires_at == granted_at + timedelta(seconds=120)
    decided = [e for e in engine.audit_events(req.id) if e.kind == "decided"][0]
    assert decided.payload["warrant_ttl_seconds"] == 120


def test_auto_allow_warrant_lives_the_policy_lifetime_from_the_proposal(engine, clock) -> None:
    req = engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    assert req.status == "granted"
    record = engine.warrant(req.id)
    assert record.expires_at == clock.now + timedelta(seconds=300) == req.expires_at


def test_an_auto_allowed_requests_deadline_is_its_warrants_lifetime_not_its_window(
    make_engine, pack_copy: Path, clock
) -> None:
    # Granted at once, so its deadline is its warrant's (120 s here), not the approval window's (300 s).
    _set_lifetimes(pack_copy, '{"auto_allow": 120, "single_approval": 600, "dual_approval": 900, "deny": 0}')
    engine = make_engine(pack=pack_copy)
    req = engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    assert req.status == "granted" and req.decision.ttl_seconds == 300
    assert req.expires_at == clock.now + timedelta(seconds=120) == engine.warrant(req.id).expires_at


def test_dual_grant_lives_its_own_tier_lifetime(engine, clock) -> None:
    req = engine.propose(proposal("rotate_api_key", "svc-payments-key"))
    assert req.tier == "dual_approval"
    req = vote(engine, req, "grace")
    clock.advance(3000)  # Late in the two-hour window.
    granted_at = clock.now
    req = vote(engine, req, "bob")
    assert req.status == "granted"
    assert engine.warrant(req.id).expires_at == granted_at + timedelta(seconds=900)


def test_a_pack_that_shortened_the_lifetime_after_the_grant_is_obeyed(make_engine, pack_copy: Path, clock) -> None:
    # Lengthening after the grant never stretches it; shortening applies at once.
    engine = make_engine(pack=pack_copy)
    req = vote(engine, engine.propose(proposal(*SINGLE)), "carol")
    granted_at = clock.now
    _set_lifetimes(pack_copy, '{"auto_allow": 300, "single_approval": 60, "dual_approval": 900, "deny": 0}')
    clock.advance(30)
    assert engine.warrant(req.id).expires_at == granted_at + timedelta(seconds=60)

    req2 = vote(engine, engine.propose(proposal(*SINGLE)), "carol")
    granted2 = clock.now
    _set_lifetimes(pack_copy, '{"auto_allow": 300, "single_approval": 3600, "dual_approval": 900, "deny": 0}')
    assert engine.warrant(req2.id).expires_at == granted2 + timedelta(seconds=60)

"""Threat: the inventory or policy got stricter after approval; the old warrant must not run.

The refusal says what the policy requires now, what the warrant was approved
under, and every reason the policy gives, word for word; it is recorded
against the request with the digest presented.
"""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
import yaml

from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import InvalidWarrant
from tests.workflow._helpers import granted_warrant, proposal


def _edit_identity(pack, name, **changes):
    inv = pack / "data" / "inventory.yaml"
    doc = yaml.safe_load(inv.read_text())
    doc["identities"][name].update(changes)
    inv.write_text(yaml.safe_dump(doc, sort_keys=False))


def _refusal_recorded(eng, req_id):
    refusal = eng.audit_events(req_id)[-1]
    assert refusal.kind == "warrant_refused"
    assert refusal.payload["presented_digest"] == eng.get(req_id).action_digest


def test_auto_allow_warrant_refused_after_target_becomes_production(make_engine, pack_copy):
    eng = make_engine(pack=pack_copy)
    doc = proposal("rotate_api_key", "dev-analytics-key")
    req = eng.propose(doc)
    assert req.status == "granted" and req.tier == "auto_allow"
    token = eng.warrant(req.id).token
    _edit_identity(pack_copy, "dev-analytics-key", environment="production")
    ran = []
    with pytest.raises(InvalidWarrant, match=re.escape(
        "invalid warrant: the policy now requires single_approval for this action, stricter than the auto_allow it "
        "was approved under (dev-analytics-key is a production credential; single approval: one person with the "
        "role security or on team-data must approve)") + "$"):
        eng.guard().execute(token, doc["action"], ran.append)
    assert not ran
    assert eng.get(req.id).status == "granted"
    _refusal_recorded(eng, req.id)


def test_single_approval_warrant_refused_after_target_becomes_protected(make_engine, pack_copy):
    eng = make_engine(pack=pack_copy)
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(eng, doc, ("carol",))
    inv = pack_copy / "data" / "inventory.yaml"
    data = yaml.safe_load(inv.read_text())
    data["protected"].append("svc-ci-runner")
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(InvalidWarrant, match=re.escape(
        "invalid warrant: the policy now requires deny for this action, stricter than the single_approval it was "
        "approved under (svc-ci-runner is protected: no automated path may touch it; svc-ci-runner is a production "
        "credential; svc-ci-runner has high privilege; deny: the action must not run through an automated path)")
            + "$"):
        eng.guard().execute(token, doc["action"], lambda a: None)
    _refusal_recorded(eng, req.id)


def test_unchanged_or_looser_policy_still_runs(make_engine, pack_copy):
    eng = make_engine(pack=pack_copy)
    doc = proposal("suspend_service_account", "svc-ci-runner")
    _req, token = granted_warrant(eng, doc, ("carol",))
    _edit_identity(pack_copy, "svc-ci-runner", environment="staging", privilege="low")
    assert eng.guard().execute(token, doc["action"], lambda a: "ok") == "ok"


def test_broken_policy_fails_closed_at_the_guard(make_engine, pack_copy):
    eng = make_engine(pack=pack_copy)
    doc = proposal("suspend_service_account", "svc-ci-runner")
    _req, token = granted_warrant(eng, doc, ("carol",))
    (pack_copy / "decision.rego").write_text("package hitlgate\n\ndecision := {")
    with pytest.raises(InvalidWarrant, match="deny"):
        eng.guard().execute(token, doc["action"], lambda a: None)


def test_stored_proposal_that_no_longer_validates_fails_closed_at_the_guard(make_engine):
    # A database writer edits the stored proposal outside its action (whose digest still matches): the
    # guard cannot re-evaluate the policy on it, and refuses.
    eng = make_engine()
    doc = proposal("suspend_service_account", "svc-ci-runner")
    req, token = granted_warrant(eng, doc, ("carol",))
    edited = {**doc, "requester": {"id": "soc-agent-7", "kind": "robot"}}
    with eng.store.engine.begin() as conn:
        conn.execute(sa.update(t.requests).where(t.requests.c.id == req.id).values(proposal=json.dumps(edited)))
    ran = []
    with pytest.raises(InvalidWarrant, match=re.escape(
        "invalid warrant: the policy could not be re-evaluated: invalid proposal: 1 problem(s)\n"
        "  - requester.kind: 'robot' is not one of ['agent', 'human', 'service']") + "$"):
        eng.guard().execute(token, doc["action"], ran.append)
    assert not ran
    _refusal_recorded(eng, req.id)

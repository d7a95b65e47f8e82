"""Fault: the request JSON (``hitlgate show --json``, ``requests --json``, the API) drops or renames its tier or reason.

Scripts and reviewers read ``tier`` (how many approvals it needs) and
``status_reason`` (why it stands where it does) from this JSON; both must be
there under those names, with the stored values. Real SQLite, the embedded engine.
"""

from __future__ import annotations

import json

from hitlgate.engine.ledger import _store_schema as t
from tests.workflow._helpers import proposal, vote
from tests.workflow.conftest import EngineFactory


def test_request_json_carries_tier_and_status_reason(make_engine: EngineFactory) -> None:
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with engine.store.read() as tx:
        doc = tx.get_request(req.id).to_dict()
    assert doc["tier"] == req.tier == "single_approval"
    assert doc["status_reason"] == "single approval: one person with the role security or on team-platform must approve"


def test_request_json_carries_every_field_under_its_name(make_engine: EngineFactory) -> None:
    """Every field, named as documented, with the stored value: a renamed or emptied one fails here."""
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    vote(engine, req, "alice", "reject")
    with engine.store.read() as tx:
        stored = tx.get_request(req.id)
    doc = stored.to_dict()
    assert sorted(doc) == sorted([
        "id", "status", "status_reason", "tier", "requester", "action", "action_digest", "policy_revision",
        "created_at", "expires_at", "updated_at", "decision", "proposal", "votes",
    ])
    assert doc["id"] == req.id
    assert doc["status"] == "rejected"
    assert doc["requester"] == "soc-agent-7"
    assert doc["action"] == {"type": "suspend_service_account", "target": "svc-ci-runner", "parameters": {}}
    assert doc["action_digest"] == req.action_digest and req.action_digest.startswith("sha256:")
    assert doc["policy_revision"] == req.policy_revision and doc["policy_revision"]
    assert doc["created_at"] == t.format_time(stored.created_at)
    assert doc["expires_at"] == t.format_time(stored.expires_at)
    assert doc["updated_at"] == t.format_time(stored.updated_at)
    assert stored.created_at < stored.expires_at
    assert doc["decision"] == stored.decision.to_dict() and doc["decision"]["tier"] == "single_approval"
    assert doc["proposal"] == proposal("suspend_service_account", "svc-ci-runner")
    assert [(v["approver"], v["verdict"]) for v in doc["votes"]] == [("alice", "reject")]
    # The document is JSON as it stands: no datetimes, tuples or mappings left for the caller to convert.
    assert json.loads(json.dumps(doc)) == doc

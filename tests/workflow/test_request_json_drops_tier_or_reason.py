"""Fault: the request JSON (``hitlgate show --json``, ``requests --json``, the API) drops or renames its tier or reason.

Scripts and reviewers read ``tier`` (how many approvals it needs) and
``status_reason`` (why it stands where it does) from this JSON; both must be
there under those names, with the stored values. Real SQLite, the embedded engine.
"""

from __future__ import annotations

from tests.workflow._helpers import proposal
from tests.workflow.conftest import EngineFactory


def test_request_json_carries_tier_and_status_reason(make_engine: EngineFactory) -> None:
    engine = make_engine()
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with engine.store.read() as tx:
        doc = tx.get_request(req.id).to_dict()
    assert doc["tier"] == req.tier == "single_approval"
    assert doc["status_reason"] == "single approval: one person with the role security or on team-platform must approve"

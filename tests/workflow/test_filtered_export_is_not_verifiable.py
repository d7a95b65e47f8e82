"""A per-request export is for reading: only that request's events, and no checkpoints to verify it against.

Checkpoints sign the whole chain's head; copied into a filtered export they
would suggest the excerpt was verified as a chain, which it cannot be.
"""

from __future__ import annotations

import io
import json

from hitlgate.engine.approve.workflow import Engine
from tests.workflow._helpers import proposal


def test_full_and_filtered_exports(engine: Engine) -> None:
    one = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    engine.checkpoint()
    engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    engine.checkpoint()
    full = io.StringIO()
    events, cps = engine.export_audit(full)
    records = [json.loads(line)["record"] for line in full.getvalue().splitlines()]
    assert (events, cps) == (len(engine.audit_events()), 2)
    assert records == ["event"] * events + ["checkpoint"] * 2

    mine = io.StringIO()
    assert engine.export_audit(mine, request_id=one.id) == (len(engine.audit_events(one.id)), 0)
    lines = [json.loads(line) for line in mine.getvalue().splitlines()]
    assert lines and {(d["record"], d["request_id"]) for d in lines} == {("event", one.id)}

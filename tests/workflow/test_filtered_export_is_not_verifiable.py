"""A per-request export is for reading: only that request's events, and no checkpoints to verify it against.

Checkpoints sign the whole chain's head; copied into a filtered export they
would suggest the excerpt was verified as a chain, which it cannot be.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import NotFoundError
from tests.workflow._helpers import proposal, run_cli


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


def test_a_request_with_no_events_is_not_found_and_nothing_is_written(engine: Engine, tmp_path: Path) -> None:
    # A typo'd id used to give an empty export and exit 0, which reads as "this request has no history".
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    out = io.StringIO()
    with pytest.raises(NotFoundError, match=re.escape("no audit events for request 'req-typo'")):
        engine.export_audit(out, request_id="req-typo")
    assert out.getvalue() == ""
    cfg = tmp_path / "hitlgate.yaml"
    cfg.write_text(f"state: sqlite:///{tmp_path / 'cli.db'}\nkeys: {tmp_path / 'cli-keys'}\n")
    env = {"HITLGATE_CONFIG": str(cfg)}
    target = tmp_path / "excerpt.jsonl"
    result = run_cli(env, "--json", "audit", "export", "--request", "req-typo", "--out", str(target), code=2)
    assert json.loads(result.stdout)["error"]["code"] == "not_found"
    assert not target.exists()

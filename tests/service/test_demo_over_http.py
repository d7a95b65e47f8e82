"""``hitlgate demo --over-http``: the demo's end-to-end walk through a real server and hitlgate.client.

The walk proposes with an agent key, sends the approvers' signed votes with
a viewer key, and verifies-and-consumes with an executor key; what it did
must be in the store the server wrote, not only in what it printed.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.cli._demo import seed_cases
from hitlgate.cli._demo_workflow import DemoExecutor, DemoTally, demo_server, walk_http
from hitlgate.engine.keys.apikeys import ApiKeys
from hitlgate.errors import InvalidWarrant


def test_demo_over_http_runs_every_situation_through_the_api() -> None:
    result = CliRunner().invoke(cli, ["demo", "--over-http"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "The end-to-end part goes through the HTTP API of a server at http://127.0.0.1:" in out
    assert out.count("POST /v1/requests (agent key) -> req-") == 8
    assert out.count("(executor key, consume) -> valid") == 8
    assert out.count("the same warrant a second time -> refused (replay)") == 8
    assert "(bob's signed approval) -> 2 of 2 approvals; quorum met (alice, bob)" in out
    assert "8 actions ran, each only with its own warrant; 8 replays refused." in out
    assert "Audit chain verified:" in out


def test_the_http_walk_consumes_each_warrant_once_and_records_the_outcome() -> None:
    situations = seed_cases()
    tally, executor = DemoTally(), DemoExecutor()
    with demo_server() as http:
        for _title, cases in situations:
            for case in cases:
                walk_http(http, case.proposal, executor, tally, echo=lambda _line: None)
        engine = http.engine
        requests = engine.list()
        records = engine.warrant_records([r.id for r in requests])
        report = engine.verify_audit()
        kinds = [e.kind for e in engine.audit_events()]
        names = {k.name: k.role for k in ApiKeys(engine).list()}
        # The warrant of the first request, consumed over HTTP, is refused again through the library too.
        first = requests[-1]
        with pytest.raises(InvalidWarrant, match="already used"):
            engine.guard().execute(records[first.id].token, first.proposal["action"], executor)
    assert tally.problems == []
    assert tally.executed == len(executor.ran) == 8
    assert len(requests) == 8
    assert all(r.requester == "soc-agent-7" for r in requests)
    assert all(records[r.id].consumed_at is not None for r in requests)
    assert kinds.count("executed") == 8
    assert {r.status for r in requests} == {"executed"}
    assert names == {"soc-agent-7": "agent", "demo-approvers": "viewer", "demo-executor": "executor"}
    assert report.events == len(kinds)


def test_demo_over_http_without_the_server_extra_says_so_before_the_story(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    result = CliRunner().invoke(cli, ["--json", "demo", "--over-http"])
    assert result.exit_code == 1
    assert "This demo shows" not in result.output
    err = json.loads(result.stdout)["error"]
    assert err["code"] == "missing_extra"
    assert err["message"].startswith("hitlgate demo --over-http needs the server extra (uvicorn not installed): pip")

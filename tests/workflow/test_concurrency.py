"""Several processes approving, issuing and consuming at once on one database.

Exactly one warrant per request, each approval counted once, each warrant
id consumed once: the store's write serialisation (SQLite ``BEGIN
IMMEDIATE``; PostgreSQL row lock on the chain head) and its unique
constraints must hold across processes, not just threads.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine import Config
from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import ApprovalError, InvalidWarrant
from tests.workflow._helpers import proposal, signed

WORKERS = ("alice", "alice", "bob", "bob", "erin")
REQUESTS = 4
#: Seconds a worker waits at a barrier, and the parent for all results: a
#: regression that deadlocks must fail the test, not hang CI.
BARRIER_TIMEOUT = 60
RESULT_TIMEOUT = 120


def _worker(name: str, url: str, key_dir: str, ids: list[str], barrier: Any, out: Any) -> None:
    try:
        engine = Engine(Config(state_url=url, key_dir=Path(key_dir)), demo=True)
        result: dict[str, Any] = {"name": name, "voted": [], "jtis": {}, "ran": []}
        barrier.wait(timeout=BARRIER_TIMEOUT)
        for rid in ids:
            req = engine.get(rid)
            try:
                engine.approve(signed(req, name, at=engine.now()))
                result["voted"].append(rid)
            except ApprovalError:
                pass
        barrier.wait(timeout=BARRIER_TIMEOUT)
        for rid in ids:
            result["jtis"][rid] = engine.warrant(rid).jti
        tokens = {rid: engine.warrant(rid).token for rid in ids}
        barrier.wait(timeout=BARRIER_TIMEOUT)
        guard = engine.guard()
        for rid in ids:
            try:
                guard.execute(tokens[rid], engine.get(rid).action, lambda a: None)
                result["ran"].append(rid)
            except InvalidWarrant:
                pass
        engine.close()
        out.put(result)
    except BaseException:
        out.put({"name": name, "error": traceback.format_exc()})


@pytest.mark.slow
def test_concurrent_approve_issue_and_consume(db_url, tmp_path):
    key_dir = tmp_path / "keys"
    parent = Engine(Config(state_url=db_url, key_dir=key_dir), demo=True)
    ids = [parent.propose(proposal("rotate_api_key", "svc-payments-key", n=i)).id for i in range(REQUESTS)]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(WORKERS))
    out = ctx.Queue()
    # Daemon processes die with the test runner; the finally block ends
    # any that are still running when the test fails or times out.
    procs = [ctx.Process(target=_worker, args=(n, db_url, str(key_dir), ids, barrier, out), daemon=True)
             for n in WORKERS]
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + RESULT_TIMEOUT
        results = []
        for _ in procs:
            try:
                results.append(out.get(timeout=max(1.0, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"only {len(results)} of {len(procs)} workers reported within {RESULT_TIMEOUT} s")
        for p in procs:
            p.join(timeout=30)
        assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=10)
        out.close()
        out.join_thread()
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, errors[0]

    for rid in ids:
        req = parent.get(rid)
        assert req.status == "executed"
        approvers = [v.approver for v in req.votes]
        assert len(approvers) == len(set(approvers)), approvers
        # Each accepted vote was reported to exactly one process, once.
        accepted = Counter(r["name"] for r in results for v in r["voted"] if v == rid)
        assert sum(accepted.values()) == len(approvers)
        assert set(accepted) == set(approvers)
        events = parent.audit_events(rid)
        assert Counter(e.kind for e in events)["approved"] == len(approvers)
        assert Counter(e.kind for e in events)["warrant_issued"] == 1
        assert Counter(e.kind for e in events)["consumed"] == 1
        # One warrant: every process saw the same jti.
        assert len({r["jtis"][rid] for r in results}) == 1
        # One consumption: exactly one process ran the action.
        assert sum(rid in r["ran"] for r in results) == 1
    parent.verify_audit()
    parent.close()

"""Helpers shared by the workflow tests: demo keys, proposals, a fake clock, voting."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection

from hitlgate.cli import cli
from hitlgate.engine.approve.approvals import SignedStatement, Statement, sign
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.audit import next_event
from hitlgate.engine.ledger.store import Request, Store

T0 = datetime(2025, 6, 2, 9, 0, 0, tzinfo=UTC)

DEMO_APPROVERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace")


def demo_key(name: str) -> Ed25519PrivateKey:
    """The deterministic demo key of an example-inventory approver."""
    seed = hashlib.sha256(f"hitlgate-demo-approver:{name}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def proposal(action_type: str = "rotate_api_key", target: str = "svc-payments-key", **params: Any) -> dict[str, Any]:
    """A valid proposal document."""
    return {
        "action": {"type": action_type, "target": target, "parameters": dict(params)},
        "requester": {"id": "soc-agent-7", "kind": "agent"},
        "justification": "workflow test",
        "incident": "INC-1",
    }


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move time forward and return the new time."""
        self.now = self.now + timedelta(seconds=seconds)
        return self.now


def signed(
    req: Request,
    name: str,
    verdict: str = "approve",
    *,
    at: datetime | None = None,
    key: Ed25519PrivateKey | None = None,
) -> SignedStatement:
    """``name``'s signed statement on ``req`` (with their demo key unless ``key`` is given)."""
    statement = Statement(req.id, req.action_digest, verdict, name, at or T0)  # type: ignore[arg-type]
    return sign(statement, key or demo_key(name))


def vote(engine: Engine, req: Request, name: str, verdict: str = "approve") -> Request:
    """Sign with ``name``'s demo key at the engine's time and submit."""
    s = signed(req, name, verdict, at=engine.now())
    return engine.approve(s) if verdict == "approve" else engine.reject(s)


def granted_warrant(engine: Engine, doc: dict[str, Any], approvers: tuple[str, ...]) -> tuple[Request, str]:
    """Propose ``doc``, approve it with ``approvers``, return the request and its warrant token."""
    req = engine.propose(doc)
    for name in approvers:
        req = vote(engine, req, name)
    assert req.status == "granted", engine.progress(req.id).describe()
    return req, engine.warrant(req.id).token


def rewrite_chain(engine: Engine, seq: int, change: Callable[[dict[str, Any]], None]) -> None:
    """What an attacker with DB access does: edit event ``seq`` and recompute every later hash."""
    events = engine.audit_events()
    with engine.store.engine.begin() as conn:
        prev = events[seq - 2] if seq > 1 else None
        for ev in events[seq - 1:]:
            payload = dict(ev.payload)
            if ev.seq == seq:
                change(payload)
            new = next_event(prev, kind=ev.kind, request_id=ev.request_id, payload=payload, at=ev.at)
            conn.execute(t.audit_events.update().where(t.audit_events.c.seq == ev.seq)
                         .values(payload=json.dumps(new.payload, sort_keys=True), prev_hash=new.prev_hash,
                                 hash=new.hash))
            prev = new
        # A careful attacker also moves the chain head, so new events append cleanly.
        conn.execute(t.audit_head.update().where(t.audit_head.c.id == 1).values(seq=prev.seq, hash=prev.hash))


def write_vote_row(engine: Engine, request_id: str, statement: SignedStatement, *, granted: bool = True) -> None:
    """What an attacker with DB access does: store ``statement`` as a vote on ``request_id`` (and grant it)."""
    s = statement.statement
    with engine.store.engine.begin() as conn:
        conn.execute(t.votes.insert().values(
            request_id=request_id, approver=s.approver, verdict=s.verdict,
            statement=json.dumps(statement.to_dict()), signed_at=s.at, recorded_at=s.at,
        ))
        if granted:
            conn.execute(t.requests.update().where(t.requests.c.id == request_id).values(status="granted"))


def run_cli(env: dict[str, str], *args: str, code: int = 0) -> Result:
    """Run ``hitlgate ARGS`` in-process with ``env`` and assert its exit code."""
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def at_write_begin(engine: Engine, change: Callable[[Connection], None]) -> list[bool]:
    """Run ``change`` once, on the engine's own connection, as its next write transaction begins.

    A ``begin`` listener on the real database: a writer that skips the
    engine's lock changes the rows just after the engine's lock-free reads
    and before its write transaction reads them again. The list it returns
    holds ``True`` once ``change`` ran.
    """
    fired: list[bool] = []

    def at_write(conn: Connection) -> None:
        if fired or not conn.get_execution_options().get("hitlgate_write"):
            return
        fired.append(True)
        change(conn)

    sa_event.listen(engine.store.engine, "begin", at_write)
    return fired


class BackgroundOpen:
    """``Store.open(url)`` on a daemon thread, for tests of what an opener does while another holds a lock."""

    def __init__(self, url: str) -> None:
        self.opened: list[Store] = []
        self.failed: list[BaseException] = []

        def run() -> None:
            try:
                self.opened.append(Store.open(url))
            except BaseException as exc:  # noqa: BLE001 - reported to the test.
                self.failed.append(exc)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def assert_waiting(self, seconds: float) -> None:
        """Still opening after ``seconds``: neither refused nor done while the lock is held."""
        self.thread.join(seconds)
        assert self.failed == []
        assert self.thread.is_alive()

    def store(self, timeout: float = 60) -> Store:
        """The store it opened, once the thread is done (within ``timeout`` seconds)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive()
        assert self.failed == []
        (store,) = self.opened
        return store


@contextmanager
def everyone_may_enter(prefix: str) -> Iterator[Path]:
    """A temporary directory every user may enter (tmp_path is private to root), removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements the engine sends while the block runs, one line each, as sent."""
    sent: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()))

    sa_event.listen(engine.store.engine, "before_cursor_execute", on_execute)
    try:
        yield sent
    finally:
        sa_event.remove(engine.store.engine, "before_cursor_execute", on_execute)

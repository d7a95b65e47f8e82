"""The anchor's newest checkpoint is found however many older checkpoints were appended after it.

Writers append their checkpoint after their commit, in no fixed order: the
writer of the newest consumption may append first and many that committed
earlier after it. A hostile review pushed the newest line out of the 4 KiB
that was read (six late writers), cut the newest consumption from the
chain and replayed its warrant. Now a reader that has read the end of the
anchor before follows it from there (the newest seq it has seen stays, as
long as it looks again before another 64 KiB are appended: every write
looks), and a reader that starts afresh reads the last 64 KiB (about a
hundred lines).
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.anchor import AuditAnchor
from tests.workflow._helpers import granted_warrant, proposal


def _cut_newest_consumption(engine: Engine, request_id: str) -> int:
    """What a database writer does: forget the consumption and cut the chain from it on."""
    consumed = next(e.seq for e in engine.audit_events(request_id) if e.kind == "consumed")
    with engine.store.engine.begin() as conn:
        conn.execute(sa.delete(t.consumed).where(t.consumed.c.request_id == request_id))
        conn.execute(t.requests.update().where(t.requests.c.id == request_id).values(status="granted"))
        conn.execute(sa.delete(t.checkpoints).where(t.checkpoints.c.seq >= consumed))
        conn.execute(sa.delete(t.audit_events).where(t.audit_events.c.seq >= consumed))
        prev = conn.execute(sa.select(t.audit_events.c.hash).where(t.audit_events.c.seq == consumed - 1)).scalar()
        conn.execute(t.audit_head.update().where(t.audit_head.c.id == 1).values(seq=consumed - 1, hash=prev))
    return consumed


@pytest.mark.parametrize("late", [6, 20])
def test_a_replay_after_late_writers_pushed_the_newest_line_back_is_refused(
        make_engine: Any, late: int, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine()
    docs = [proposal("suspend_service_account", "svc-ci-runner", note=f"n{i}") for i in range(late + 1)]
    granted = [granted_warrant(engine, doc, ("carol",)) for doc in docs]
    # The first `late` consumptions' writers are slow to append (still syncing, or waiting for the anchor's lock);
    # the newest consumption's writer appends first.
    real = AuditAnchor.append
    held: list[tuple[AuditAnchor, Any]] = []
    monkeypatch.setattr(AuditAnchor, "append", lambda self, cps: held.append((self, list(cps))))
    runs: list[Any] = []
    for (_, token), doc in zip(granted[:late], docs[:late], strict=True):
        engine.guard().execute(token, doc["action"], runs.append)
    monkeypatch.setattr(AuditAnchor, "append", real)
    req, token = granted[-1]
    engine.guard().execute(token, docs[-1]["action"], runs.append)
    newest = engine.anchor.last()
    for anchor, checkpoints in held:
        real(anchor, checkpoints)
    assert newest is not None and engine.anchor.last() == newest  # This reader follows the end.
    fresh = AuditAnchor(engine.anchor.path)
    assert fresh.last() == newest  # So does one that starts reading now.
    assert f'"seq": {newest.seq},'.encode() not in engine.anchor.path.read_bytes().splitlines()[-1]
    consumed = _cut_newest_consumption(engine, req.id)
    assert consumed == newest.seq
    for guarding in (engine, make_engine()):  # This engine, and one that starts afresh.
        with pytest.raises(Exception, match="truncated"):
            guarding.guard().execute(token, docs[-1]["action"], runs.append)
    assert len(runs) == late + 1  # Each warrant ran once.


def test_a_reader_keeps_the_newest_it_has_seen_however_many_older_lines_follow(engine: Engine) -> None:
    for target, approver in (("svc-ci-runner", "carol"), ("svc-reporting", "frank")):
        granted_warrant(engine, proposal("suspend_service_account", target), (approver,))
    lines = engine.anchor.path.read_bytes().splitlines(keepends=True)
    newest = engine.anchor.last()
    assert newest is not None and f'"seq": {newest.seq},'.encode() in lines[-1]
    for _ in range(10):  # 200 lines, more than the 64 KiB a fresh reader reads: older checkpoints, appended late.
        with engine.anchor.path.open("ab") as fh:
            fh.write(lines[0] * 20)
        assert engine.anchor.last() == newest  # Every write looks, so a reader sees each stretch appended.
    # A same-length rewrite of what this reader last read is seen: it reads the file afresh.
    data = bytearray(engine.anchor.path.read_bytes())
    data[-3] = ord("x") if data[-3] != ord("x") else ord("y")
    engine.anchor.path.write_bytes(bytes(data))
    with pytest.raises(Exception, match="malformed"):
        engine.anchor.last()

"""Store at size: listing and ``audit verify`` with 10^6 requests and 10^7 audit events on PostgreSQL.

    python -m bench.bench_store [--smoke] [--requests N] [--events N] [--json]

Starts a throwaway PostgreSQL cluster (the same helper as the test suite,
``tests/_pgcluster.py``), creates the schema with ``Store.open``, and loads
a generated store quickly with ``COPY``: requests in a realistic status mix
with their whole lifecycle in the audit chain (proposed, decided, votes,
granted, warrant issued, consumed, outcome; expiries, rejections, denials,
revocations), the later events of each request interleaved with other
requests' as they would be, the vote, warrant and consumption rows that
go with them, and the signed checkpoints the engine writes (every 50th event
and every warrant issue and consumption) in the database and in the audit
anchor file. Hashes come from :func:`hitlgate.engine.ledger.audit.compute_hash`,
signatures from the engine keyring, so ``audit verify`` accepts the result.
Payloads carry what the engine's do (digest, status, tier, approver, signed
statement, jti) but are shorter than real ones (~1 KB with controls and
quorum detail), which makes the hashing part of verify cheaper than on a
real store of the same length.

Measured:

* listing, through ``Engine.list`` (one read transaction, rows parsed into
  requests) and the CLI's work (plus each row's warrant state): first page
  and deep pages (a cursor at a random depth) for pending, executed and all
  requests; p50/p99 of interleaved calls;
* ``audit verify`` from genesis and incrementally (after more requests
  were appended behind the verified mark), each in a fresh process: wall
  time and peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: Issue 9's store goals, for ``python -m bench`` (metric, op, target, description).
GOALS = [
    ("list_pending_p99_ms", "<=", 20.0, "list pending requests p99 (first and deep pages), ms"),
]

SMOKE = {"requests": 1000, "chain_requests": 300, "events": 0, "tail_requests": 50, "rounds": 10, "page": 100}
FULL = {"requests": 1_000_000, "chain_requests": 1_000_000, "events": 10_000_000, "tail_requests": 10_000,
        "rounds": 300, "page": 100}

#: (final status, share). A request's events follow from its status.
MIX = [
    ("executed", 0.46), ("execution_failed", 0.04), ("pending", 0.05), ("granted", 0.02), ("denied", 0.10),
    ("rejected", 0.05), ("expired", 0.15), ("revoked", 0.03), ("execution_unknown", 0.01),
    ("auto_executed", 0.09),
]
APPROVERS = ["alice", "bob", "carol", "dave", "erin", "frank"]
CHECKPOINT_EVERY = 50
T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY_REVISION = "sha256:" + "ab" * 32


def _log_default(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class _Req:
    rid: str
    status: str
    tier: str
    target: str
    digest: str
    created: datetime
    events: list[tuple[str, dict[str, Any]]]


def _lifecycle(rng: random.Random, i: int) -> _Req:
    """One request and its events (kind, payload without status bookkeeping), by a drawn final status."""
    status = rng.choices([m[0] for m in MIX], weights=[m[1] for m in MIX])[0]
    rid = f"req-{i:024x}"
    target = f"svc-{rng.randrange(100_000):05d}-key"
    digest = "sha256:" + f"{rng.getrandbits(256):064x}"
    tier = "auto_allow" if status == "auto_executed" else ("deny" if status == "denied" else
                                                          rng.choice(["single_approval", "dual_approval"]))
    quorum = 2 if tier == "dual_approval" else 1
    ev: list[tuple[str, dict[str, Any]]] = []
    initial = {"auto_allow": "granted", "deny": "denied"}.get(tier, "pending")
    ev.append(("proposed", {"action": {"type": "rotate_api_key", "target": target}, "requester": {
        "id": f"agent-{i % 97}", "kind": "agent"}, "status": initial}))
    ev.append(("decided", {"tier": tier, "policy_revision": POLICY_REVISION, "status": initial}))
    if status in ("pending", "denied"):
        if status == "pending" and quorum == 2 and rng.random() < 0.5:
            ev.append(_vote("approved", rid, digest, "alice", "pending"))
        return _Req(rid, status, tier, target, digest, T0, ev)
    if status == "rejected":
        ev.append(_vote("rejected", rid, digest, rng.choice(APPROVERS), "rejected"))
        return _Req(rid, status, tier, target, digest, T0, ev)
    if status == "expired" and rng.random() < 0.8:
        ev.append(("expired", {"reason": "the approval window closed", "status": "expired"}))
        return _Req(rid, status, tier, target, digest, T0, ev)
    if tier != "auto_allow":
        voters = rng.sample(APPROVERS, quorum)
        for n, who in enumerate(voters):
            ev.append(_vote("approved", rid, digest, who, "granted" if n == quorum - 1 else "pending"))
        ev.append(("granted", {"approvals": voters, "status": "granted"}))
    if status in ("revoked",):
        ev.append(("revoked", {"by": "alice", "status": "revoked", "warrant_jti": None}))
        return _Req(rid, status, tier, target, digest, T0, ev)
    if status == "expired":
        ev.append(("expired", {"reason": "the grant lapsed without its warrant being used", "status": "expired"}))
        return _Req(rid, status, tier, target, digest, T0, ev)
    jti = f"w-{rng.getrandbits(96):024x}"
    ev.append(("warrant_issued", {"jti": jti, "kid": "KID", "status": "granted"}))
    if status == "granted":
        return _Req(rid, status, tier, target, digest, T0, ev)
    ev.append(("consumed", {"jti": jti, "kid": "KID", "status": "granted"}))
    final = "executed" if status == "auto_executed" else status
    kind = {"executed": "executed", "execution_failed": "execution_failed",
            "execution_unknown": "execution_unknown"}[final]
    ev.append((kind, {"outcome": {"ok": final == "executed"}, "status": final}))
    return _Req(rid, final, tier, target, digest, T0, ev)


def _vote(kind: str, rid: str, digest: str, who: str, status: str) -> tuple[str, dict[str, Any]]:
    statement = {"statement": {"request_id": rid, "action_digest": digest, "approver": who,
                               "verdict": "approve" if kind == "approved" else "reject"},
                 "signature": "sig-" + who}
    return kind, {"approver": who, "signed": statement, "status": status}


class _Generator:
    """Appends generated requests and their chain through COPY; resumable (the tail after a verify)."""

    def __init__(self, url: str, keyring: Any, anchor_path: Path, seed: int) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=False)
        # The engine's key, read once: the keyring re-reads its state file on every signing_key().
        signing = keyring.signing_key()

        class _Once:
            def signing_key(self) -> Any:
                return signing

        self.keyring = _Once()
        self.anchor_path = anchor_path
        self.rng = random.Random(seed)
        self.seq = 0
        self.prev = None  # type: str | None
        self.n = 0
        self.events = 0
        self.checkpoints = 0

    def add(self, count: int, log: Callable[[str], None], *, until_events: int = 0) -> None:
        """Append ``count`` requests (or more, until the chain holds ``until_events`` events)."""
        from hitlgate.engine.ledger.anchor import anchor_line
        from hitlgate.engine.ledger.audit import GENESIS_HASH, compute_hash, format_time, sign_checkpoint

        cur = self.conn.cursor()
        t_start = time.perf_counter()
        with open(self.anchor_path, "a", encoding="utf-8") as anchor:
            req_rows: list[tuple[Any, ...]] = []
            ev_rows: list[tuple[Any, ...]] = []
            vote_rows: list[tuple[Any, ...]] = []
            warrant_rows: list[tuple[Any, ...]] = []
            consumed_rows: list[tuple[Any, ...]] = []
            cp_rows: list[tuple[Any, ...]] = []
            # Later events of a request wait in a heap until their turn: chains interleave requests.
            waiting: list[tuple[int, int, int, _Req]] = []
            step = 0
            made = 0
            prev = self.prev or GENESIS_HASH

            class _Head:
                seq = 0
                hash = ""

            head = _Head()

            def emit(req: _Req, idx: int) -> None:
                nonlocal prev
                kind, body = req.events[idx]
                self.seq += 1
                at = req.created + timedelta(seconds=idx * 30)
                payload = {"action_digest": req.digest, **body}
                digest = compute_hash(seq=self.seq, at=at, kind=kind, request_id=req.rid, payload=payload,
                                      prev_hash=prev)
                ev_rows.append((self.seq, format_time(at), kind, req.rid, json.dumps(payload, sort_keys=True),
                                prev, digest))
                if kind in ("approved", "rejected"):
                    vote_rows.append((req.rid, body["approver"], "approve" if kind == "approved" else "reject",
                                      json.dumps(body["signed"], sort_keys=True), format_time(at), format_time(at)))
                elif kind == "warrant_issued":
                    warrant_rows.append((body["jti"], req.rid, "token", "KID", format_time(at),
                                         format_time(at + timedelta(minutes=5))))
                elif kind == "consumed":
                    consumed_rows.append((body["jti"], req.rid, format_time(at)))
                if kind in ("warrant_issued", "consumed") or self.seq % CHECKPOINT_EVERY == 0:
                    head.seq, head.hash = self.seq, digest
                    cp = sign_checkpoint(self.keyring, head, at)  # type: ignore[arg-type]
                    cp_rows.append((cp.seq, cp.head_hash, format_time(cp.at), cp.token, cp.kid))
                    anchor.write(anchor_line(cp))
                    self.checkpoints += 1
                prev = digest
                self.events += 1

            while made < count or (until_events and self.events + len(waiting) * 3 < until_events) or waiting:
                if made < count or (until_events and self.events + len(waiting) * 3 < until_events):
                    req = _lifecycle(self.rng, self.n)
                    req.created = T0 + timedelta(seconds=self.n)
                    self.n += 1
                    made += 1
                    final_at = req.created + timedelta(seconds=(len(req.events) - 1) * 30)
                    expires = req.created + (timedelta(days=3650) if req.status == "pending" else timedelta(hours=1))
                    required = {"dual_approval": 2, "single_approval": 1}.get(req.tier, 0)
                    slot = {"roles": ["security"], "teams": ["team-platform"]}
                    decision = {"tier": req.tier, "risk_factors": ["production"],
                                "reasons": [f"{req.target} is in production"],
                                "quorum": {"required": required, "slots": [slot] * required},
                                "ttl_seconds": 300, "controls": [], "blast_radius": {"partners": [], "workloads": []},
                                "policy_revision": POLICY_REVISION}
                    proposal = {"action": {"type": "rotate_api_key", "target": req.target, "parameters": {}},
                                "requester": {"id": f"agent-{self.n % 97}", "kind": "agent"},
                                "justification": "generated"}
                    req_rows.append((req.rid, req.status, req.tier, f"agent-{self.n % 97}", "rotate_api_key",
                                  req.target, req.digest, json.dumps(proposal, sort_keys=True),
                                  json.dumps(decision, sort_keys=True), POLICY_REVISION, format_time(req.created),
                                  format_time(expires), format_time(final_at), ""))
                    emit(req, 0)
                    emit(req, 1)
                    if len(req.events) > 2:
                        heapq.heappush(waiting, (step + self.rng.randrange(1, 200), self.n, 2, req))
                step += 1
                while waiting and (waiting[0][0] <= step or made >= count and not until_events
                                   or (until_events and self.events + len(waiting) * 3 >= until_events
                                       and made >= count)):
                    _, order, idx, req = heapq.heappop(waiting)
                    emit(req, idx)
                    if idx + 1 < len(req.events):
                        heapq.heappush(waiting, (step + self.rng.randrange(1, 50), order, idx + 1, req))
                if len(ev_rows) >= 200_000:
                    self._flush(req_rows, ev_rows, vote_rows, warrant_rows, consumed_rows, cp_rows)
                    log(f"  {self.n:,} requests, {self.events:,} events, {self.checkpoints:,} checkpoints "
                        f"({time.perf_counter() - t_start:.0f} s)")
            self._flush(req_rows, ev_rows, vote_rows, warrant_rows, consumed_rows, cp_rows)
            self.prev = prev
        cur.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (self.seq, prev))
        self.conn.commit()

    def _flush(self, *batches: list[tuple[Any, ...]]) -> None:
        req_rows, ev_rows, vote_rows, warrant_rows, consumed_rows, cp_rows = batches
        # One transaction (committed at the end): requests first, for the foreign keys of the rest.
        cur = self.conn.cursor()
        for sql, rows in (
            ("COPY requests (id, status, tier, requester, action_type, target, action_digest, proposal, decision, "
             "policy_revision, created_at, expires_at, updated_at, status_reason) FROM STDIN", req_rows),
            ("COPY audit_events (seq, at, kind, request_id, payload, prev_hash, hash) FROM STDIN", ev_rows),
            ("COPY votes (request_id, approver, verdict, statement, signed_at, recorded_at) FROM STDIN", vote_rows),
            ("COPY warrants (jti, request_id, token, kid, issued_at, expires_at) FROM STDIN", warrant_rows),
            ("COPY consumed_warrants (jti, request_id, consumed_at) FROM STDIN", consumed_rows),
            ("COPY audit_checkpoints (seq, head_hash, at, token, kid) FROM STDIN", cp_rows),
        ):
            if rows:
                with cur.copy(sql) as cp:
                    for row in rows:
                        cp.write_row(row)
                rows.clear()

    def close(self) -> None:
        self.conn.close()


def _load_requests_only(url: str, count: int, seed: int, log: Callable[[str], None]) -> None:
    """``count`` request rows (and the warrant rows of those that have one) for the listing measurements.

    Only the tables listing reads: no chain, so it loads at COPY speed. The
    status mix and row contents are the same as the chain generator's.
    """
    import psycopg

    rng = random.Random(seed)
    slot = {"roles": ["security"], "teams": ["team-platform"]}
    from hitlgate.engine.ledger.audit import format_time

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn, conn.cursor() as cur:
        warrants: list[tuple[Any, ...]] = []
        with cur.copy(
            "COPY requests (id, status, tier, requester, action_type, target, action_digest, proposal, decision, "
            "policy_revision, created_at, expires_at, updated_at, status_reason) FROM STDIN"
        ) as rq:
            for i in range(count):
                req = _lifecycle(rng, i)
                created = T0 + timedelta(seconds=i)
                required = {"dual_approval": 2, "single_approval": 1}.get(req.tier, 0)
                decision = {"tier": req.tier, "risk_factors": ["production"],
                            "reasons": [f"{req.target} is in production"],
                            "quorum": {"required": required, "slots": [slot] * required},
                            "ttl_seconds": 300, "controls": [], "blast_radius": {"partners": [], "workloads": []},
                            "policy_revision": POLICY_REVISION}
                proposal = {"action": {"type": "rotate_api_key", "target": req.target, "parameters": {}},
                            "requester": {"id": f"agent-{i % 97}", "kind": "agent"}, "justification": "generated"}
                expires = created + (timedelta(days=3650) if req.status == "pending" else timedelta(hours=1))
                rq.write_row((req.rid, req.status, req.tier, f"agent-{i % 97}", "rotate_api_key", req.target,
                              req.digest, json.dumps(proposal, sort_keys=True), json.dumps(decision, sort_keys=True),
                              POLICY_REVISION, format_time(created), format_time(expires), format_time(created), ""))
                for kind, body in req.events:
                    if kind == "warrant_issued":
                        warrants.append((body["jti"], req.rid, "token", "KID", format_time(created),
                                         format_time(created + timedelta(minutes=5))))
                if i and i % 200_000 == 0:
                    log(f"  {i:,} request rows")
        with cur.copy("COPY warrants (jti, request_id, token, kid, issued_at, expires_at) FROM STDIN") as wc:
            for row in warrants:
                wc.write_row(row)
        conn.commit()


#: The status mix of :data:`MIX` as buckets of 100 (status, tier), for the server-side loader.
_SQL_BUCKETS = (
    [("executed", "single_approval")] * 46 + [("execution_failed", "dual_approval")] * 4
    + [("pending", "single_approval")] * 3 + [("pending", "dual_approval")] * 2 + [("granted", "single_approval")] * 2
    + [("denied", "deny")] * 10 + [("rejected", "single_approval")] * 5 + [("expired", "dual_approval")] * 15
    + [("revoked", "single_approval")] * 3 + [("execution_unknown", "single_approval")] * 1
    + [("executed", "auto_allow")] * 9
)


def _load_requests_sql(url: str, count: int) -> None:
    """``count`` request rows generated by PostgreSQL itself (generate_series), and their warrant rows.

    The same row shapes and status mix as :func:`_load_requests_only`, built
    server-side: a million rows load in seconds instead of minutes of
    Python. Every decision text differs (its reason names the target), as
    real ones do, so the parsed-decision cache does not flatter listing.
    """
    import psycopg

    values = ", ".join(f"({i}, '{st}', '{tier}')" for i, (st, tier) in enumerate(_SQL_BUCKETS))
    slot = '{"roles": ["security"], "teams": ["team-platform"]}'
    quorum = ("CASE b.tier WHEN 'single_approval' THEN '{\"required\": 1, \"slots\": [" + slot + "]}' "
              "WHEN 'dual_approval' THEN '{\"required\": 2, \"slots\": [" + slot + ", " + slot + "]}' "
              "ELSE '{\"required\": 0, \"slots\": []}' END")
    ts = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"
    # Built from constants and integers only.
    sql = f"""
        INSERT INTO requests (id, status, tier, requester, action_type, target, action_digest, proposal, decision,
                              policy_revision, created_at, expires_at, updated_at, status_reason)
        SELECT 'req-' || lpad(to_hex(g.i), 24, '0'), b.status, b.tier, 'agent-' || (g.i % 97),
               'rotate_api_key', g.target,
               'sha256:' || md5(g.i::text) || md5((g.i + 1)::text),
               '{{"action": {{"parameters": {{}}, "target": "' || g.target || '", "type": "rotate_api_key"}}, '
               || '"justification": "generated", "requester": {{"id": "agent-' || (g.i % 97)
               || '", "kind": "agent"}}}}',
               '{{"blast_radius": {{"partners": [], "workloads": []}}, "controls": [], "policy_revision": '
               || '"{POLICY_REVISION}", "quorum": ' || {quorum} || ', "reasons": ["' || g.target
               || ' is in production"], "risk_factors": ["production"], "tier": "' || b.tier
               || '", "ttl_seconds": 300}}',
               '{POLICY_REVISION}',
               to_char(g.at, {ts}),
               to_char(g.at + CASE WHEN b.status = 'pending' THEN interval '3650 days'
                                   ELSE interval '1 hour' END, {ts}),
               to_char(g.at, {ts}), ''
        FROM (SELECT i, 'svc-' || lpad(((i::bigint * 7919) % 100000)::text, 5, '0') || '-key' AS target,
                     timestamp '2026-01-01' + i * interval '1 second' AS at,
                     ((i::bigint * 2654435761) % 100)::int AS bucket
              FROM generate_series(0, {int(count) - 1}) AS i) AS g
        JOIN (VALUES {values}) AS b(bucket, status, tier) ON b.bucket = g.bucket
    """  # noqa: S608
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(sql)  # type: ignore[arg-type]  # Built from constants and integers only.
        conn.execute(
            "INSERT INTO warrants (jti, request_id, token, kid, issued_at, expires_at) "
            "SELECT 'w-' || id, id, 'token', 'KID', created_at, created_at FROM requests "
            "WHERE status IN ('executed', 'execution_failed', 'execution_unknown', 'granted')"
        )
        conn.commit()


def _build_indexes(url: str) -> float:
    """Create the store's query indexes after a bulk load, and ANALYZE; the seconds it took."""
    import sqlalchemy as sa

    from hitlgate.engine.ledger import _store_schema as t

    t0 = time.perf_counter()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for index in t.INDEXES:
                index.create(conn)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()
    return round(time.perf_counter() - t0, 3)


def _fresh_store(cluster: Any, name: str) -> str:
    """A new database with the schema, without the query indexes (a bulk load builds them afterwards)."""
    from hitlgate.engine.ledger import _store_schema as t
    from hitlgate.engine.ledger.store import Store

    url = str(cluster.new_database(name))
    store = Store.open(url)
    with store.engine.begin() as conn:
        for index in t.INDEXES:
            index.drop(conn)
    store.close()
    return url


def _percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]


def _verify_in_child(url: str, key_dir: Path, full: bool) -> dict[str, Any]:
    """``audit verify`` in a fresh process: wall seconds, peak RSS, what it checked."""
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "bench.bench_store", "--verify-worker", url, str(key_dir), "full" if full else "incr"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=7200,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"verify worker failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _verify_worker(url: str, key_dir: str, mode: str) -> None:
    from bench._nocache import uncached
    from hitlgate.engine import Config, Decider
    from hitlgate.engine.approve.workflow import Engine

    cfg = Config(state_url=url, key_dir=Path(key_dir))
    engine = Engine(cfg, uncached(Decider.from_config(cfg)), demo=True)
    t0 = time.perf_counter()
    report = engine.verify_audit(incremental=mode != "full")
    seconds = time.perf_counter() - t0
    hwm = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) // 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": hwm, "events": report.events,
                      "start_seq": report.start_seq, "head_seq": report.head_seq,
                      "checkpoints": report.checkpoints, "requests_checked": report.requests_checked}))


def _measure_listing(url: str, key_dir: Path, opts: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    import sqlalchemy as sa

    from bench._nocache import uncached
    from hitlgate.engine import Config, Decider
    from hitlgate.engine.approve.workflow import Engine
    from hitlgate.engine.ledger import _store_schema as t
    from hitlgate.engine.ledger.store import ListCursor

    cfg = Config(state_url=url, key_dir=key_dir)
    engine = Engine(cfg, uncached(Decider.from_config(cfg)), demo=True)
    threshold = gc.get_threshold()
    rng = random.Random(7)
    page = int(opts["page"])
    depth_cursors: dict[str | None, list[ListCursor]] = {}
    with engine.store.engine.connect() as conn:
        for status in ("pending", "executed", None):
            q = sa.select(t.requests.c.created_at, t.requests.c.id).order_by(sa.func.random()).limit(500)
            rows = conn.execute(q if status is None else q.where(t.requests.c.status == status)).all()
            depth_cursors[status] = [ListCursor(r[0], r[1]) for r in rows]
    cases: dict[str, Callable[[], Any]] = {}
    for status in ("pending", "executed", None):
        name = status or "all"
        cursors = depth_cursors[status]
        cases[f"{name}_first"] = lambda s=status: engine.list(s, limit=page)
        cases[f"{name}_deep"] = lambda s=status, c=cursors: engine.list(s, limit=page, before=rng.choice(c))
    cases["pending_first_with_warrants"] = lambda: engine.warrant_records(
        [r.id for r in engine.list("pending", limit=page)])
    cases["executed_deep_with_warrants"] = lambda c=depth_cursors["executed"]: engine.warrant_records(
        [r.id for r in engine.list("executed", limit=page, before=rng.choice(c))])
    def measure(prefix: str) -> dict[str, Any]:
        samples: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(3):  # Warm up the caches and the connection pool.
            for fn in cases.values():
                fn()
        for _ in range(int(opts["rounds"])):
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - t0) * 1000)
        got: dict[str, Any] = {}
        for name, xs in samples.items():
            p50, p99 = _percentiles(xs)
            got[f"{prefix}{name}_p50_ms"], got[f"{prefix}{name}_p99_ms"] = round(p50, 3), round(p99, 3)
        for q in ("p50", "p99"):
            first, deep = got[f"{prefix}pending_first_{q}_ms"], got[f"{prefix}pending_deep_{q}_ms"]
            got[f"{prefix}pending_{q}_ms"] = max(first, deep)
        return got

    # First with CPython's collector defaults (a process that did not settle it), then as `hitlgate serve`
    # runs: the engine frozen out of the collector and its youngest threshold raised (service.collector).
    out = measure("list_default_gc_")
    from hitlgate.service.collector import settle_for_serving

    settle_for_serving()
    try:
        out.update(measure("list_"))
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
    with engine.store.engine.connect() as conn:
        plan = conn.execute(sa.text(
            "EXPLAIN SELECT * FROM requests WHERE status = 'pending' ORDER BY created_at DESC, id DESC LIMIT 100"
        )).all()
    out["list_pending_plan"] = " / ".join(r[0].strip() for r in plan[:3])
    engine.store.close()
    log(f"  listing: pending p50/p99 {out['list_pending_p50_ms']:.2f}/{out['list_pending_p99_ms']:.2f} ms")
    return out


def run(mode: Any = "full", *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the store-at-size benchmark; ``mode`` is "smoke", "full" or a dict overriding :data:`FULL`."""
    import sqlalchemy as sa

    from hitlgate.engine.keys.keyring import EngineKeyring
    from tests._pgcluster import pg_bindir, running_cluster

    say = log or _log_default
    if mode == "smoke":
        opts = dict(SMOKE)
    elif mode == "full":
        opts = dict(FULL)
    elif isinstance(mode, dict):
        opts = {**(SMOKE if mode.get("smoke") else FULL), **{k: v for k, v in mode.items() if k != "smoke"}}
    else:
        raise ValueError(f"unknown mode {mode!r}: smoke, full or a dict of options")
    bindir = pg_bindir()
    if bindir is None:
        return {"missing": "PostgreSQL (initdb, pg_ctl) is not installed: run scripts/install-postgres"}
    settings = ["shared_buffers=1GB", "work_mem=64MB", "maintenance_work_mem=512MB", "max_wal_size=8GB",
                "autovacuum=off"]
    result: dict[str, Any] = {"options": opts}
    with tempfile.TemporaryDirectory(prefix="hitlgate-bench-store-") as tmp, running_cluster(
        bindir, settings=settings
    ) as cluster:
        # Listing: a store of opts["requests"] requests (its own database: no chain needed).
        url = _fresh_store(cluster, "listing")
        say(f"store: loading {opts['requests']:,} requests for listing")
        t0 = time.perf_counter()
        _load_requests_sql(url, int(opts["requests"]))
        result["listing_load_s"] = round(time.perf_counter() - t0, 3)
        result["listing_index_s"] = _build_indexes(url)
        with sa.create_engine(url).connect() as conn:
            result["requests"] = conn.exec_driver_sql("SELECT count(*) FROM requests").scalar()
            result["pending"] = conn.exec_driver_sql("SELECT count(*) FROM requests WHERE status='pending'").scalar()
        key_dir = Path(tmp) / "keys"
        key_dir.mkdir(mode=0o700)
        result.update(_measure_listing(url, key_dir, opts, say))

        # The chain: opts["chain_requests"] requests with their lifecycles, and at least opts["events"] events.
        url = _fresh_store(cluster, "chain")
        key_dir = Path(tmp) / "chain-keys"
        key_dir.mkdir(mode=0o700)
        gen = _Generator(url, EngineKeyring(key_dir), key_dir / "audit-anchor.jsonl", seed=2)
        say(f"store: generating a chain for {opts['chain_requests']:,} requests / >= {opts['events']:,} events")
        t0 = time.perf_counter()
        gen.add(int(opts["chain_requests"]), say, until_events=int(opts["events"]))
        result["chain_generate_s"] = round(time.perf_counter() - t0, 3)
        result["chain_index_s"] = _build_indexes(url)
        with sa.create_engine(url).connect() as conn:
            result["chain_requests"] = conn.exec_driver_sql("SELECT count(*) FROM requests").scalar()
            result["events"] = conn.exec_driver_sql("SELECT count(*) FROM audit_events").scalar()
            result["checkpoints"] = conn.exec_driver_sql("SELECT count(*) FROM audit_checkpoints").scalar()
            result["chain_db_size_mb"] = round(conn.exec_driver_sql(
                "SELECT pg_database_size(current_database())").scalar() / 2**20)
        say(f"store: {result['chain_requests']:,} requests, {result['events']:,} events, {result['checkpoints']:,} "
            f"checkpoints in {result['chain_generate_s']} s (+{result['chain_index_s']} s indexes)")
        full = _verify_in_child(url, key_dir, full=True)
        # start_seq is 0 by definition for a walk from genesis: reported only for the incremental one.
        result.update({f"verify_full_{k}": v for k, v in full.items() if k != "start_seq"})
        result["verify_full_us_per_event"] = round(full["seconds"] / max(1, full["events"]) * 1e6, 1)
        say(f"  verify --full: {full['seconds']:.1f} s, peak RSS {full['peak_rss_mb']} MB")
        gen.add(int(opts["tail_requests"]), say)
        gen.close()
        incr = _verify_in_child(url, key_dir, full=False)
        result.update({f"verify_incremental_{k}": v for k, v in incr.items()})
        say(f"  verify (incremental): {incr['seconds']:.1f} s over {incr['events']:,} events, "
            f"peak RSS {incr['peak_rss_mb']} MB")
    return result


def main() -> None:
    """Command line (see the module docstring)."""
    # A timeout's SIGTERM unwinds like an exception, so the throwaway cluster is stopped and deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if len(sys.argv) > 1 and sys.argv[1] == "--verify-worker":
        _verify_worker(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a small store (seconds)")
    ap.add_argument("--requests", type=int)
    ap.add_argument("--events", type=int)
    ap.add_argument("--chain-requests", type=int)
    ap.add_argument("--rounds", type=int, help="listing calls per case")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()
    mode: Any = {"smoke": args.smoke, **{k: v for k, v in (("requests", args.requests), ("events", args.events),
                                                                ("chain_requests", args.chain_requests),
                                                                ("rounds", args.rounds))
                                         if v is not None}}
    result = run(mode)
    print(json.dumps(result, indent=None if args.json else 2, default=str))


if __name__ == "__main__":
    main()


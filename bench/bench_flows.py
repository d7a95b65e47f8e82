"""The approval path at full durability: CPU per flow, and flows/s with concurrent clients.

    python -m bench.bench_flows [--smoke] [--before REF] [--rounds 5] [--n 40] [--clients 8] [--seconds 10]
                                [--no-postgres]

One *flow* is the whole single-approval path through the public API:
``propose`` (decide, store, audit), ``approve`` with a signed statement,
``warrant`` (issue, anchored checkpoint), ``guard.execute`` (verify,
re-check, consume with an anchored checkpoint, record the outcome).

Measured, in one run:

* ``cpu_ms_per_flow_<db>``: ``time.process_time`` over ``n`` sequential
  flows in one process, divided by ``n`` (after 5 warm-up flows); the
  median of ``rounds`` rounds. The engine runs as it is configured by
  default, with its exact decision cache on: each flow proposes a new
  action (a unique parameter), so the proposal's decision is evaluated;
  the re-checks at warrant and guard time evaluate the same input under
  the same modules and inventory revision, and the cache answers them as
  it does in production (a changed policy or inventory is a new revision,
  which the cache never answers). ``cpu_ms_per_flow_<db>_nocache``: the
  same with the cache off, every decision evaluated, in the same rounds. Rounds are interleaved: each round runs
  every database (and, with ``before``, the old code then the new), each in
  a fresh process, so load on the shared machine hits all of them alike. It
  is the client's CPU: PostgreSQL's own server CPU is not included.
* ``server_cpu_ms_per_flow_postgresql``: the PostgreSQL server's CPU over
  the same flows: its main process and every process it started (the
  backend serving the client, the WAL writer, the checkpointer, any that
  exited), read from ``/proc`` (only when the server runs on this machine).
* ``cpu_ceiling_flows_per_s_<db>``: the flows/s this machine could complete
  if all its ``cores`` did nothing but flows: cores times 1,000 divided by
  the CPU ms of one flow (the client's, plus the server's on PostgreSQL).
  No number of clients can go past it; ``flows_per_s_<db>`` divided by it
  says how much of the machine the concurrent clients put to use (the rest
  is spent waiting, mostly for the chain-head lock that serialises writers).
* ``statements_per_flow_<db>`` / ``commits_per_flow_<db>``: SQL statements
  sent through SQLAlchemy (``before_cursor_execute``: every statement,
  including ``BEGIN IMMEDIATE`` and savepoints; executemany counts once) and
  transactions committed (``commit`` events), counted over 5 flows.
* ``flows_per_s_<db>``: ``clients`` processes (spawned, each with its own
  engine and connection pool) run flows against one store for ``seconds``;
  completed flows divided by the wall time from the common start to the last
  finish. Afterwards every request must have exactly one warrant, exactly
  one consumption row, exactly one ``consumed`` audit event and status
  ``executed``, and ``audit verify`` (:meth:`Engine.verify_audit`: chain,
  checkpoints, anchor file, tables against the chain) must pass; otherwise
  the benchmark raises.

Durability is what production runs: SQLite in WAL mode with the store's own
``synchronous`` setting (read back and returned: 1, NORMAL, the commit does
not sync the log) and the store's own fsync of the log file after each
commit (counted per flow: ``sqlite_wal_fsyncs_per_flow``, one per commit),
and a throwaway
PostgreSQL cluster (:mod:`tests._pgcluster`) started with ``fsync``,
``synchronous_commit`` and ``full_page_writes`` on (the test suite's cluster
turns them off; this one must not), read back from the server.

``before`` names a git revision: its ``hitlgate`` is extracted to a
temporary directory and measured by the same code in the same rounds,
interleaved with this checkout (keys ``before_*``). Without it, the numbers
recorded in :data:`BEFORE` are printed for comparison.

``run(options)`` is the harness entry point (``python -m bench``); it returns
a flat dict of numbers. ``run("smoke")`` finishes in a few seconds (SQLite
only, two clients, one second).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    # Appended, not prepended: a `before` tree on PYTHONPATH must win the
    # `hitlgate` import; this only makes `tests._pgcluster` importable.
    sys.path.append(str(_ROOT))

import sqlalchemy as sa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import event as sa_event  # noqa: E402

import hitlgate  # noqa: E402
from bench._nocache import uncached  # noqa: E402
from hitlgate.engine import Config, Decider  # noqa: E402
from hitlgate.engine.approve.approvals import Statement, sign  # noqa: E402
from hitlgate.engine.approve.workflow import Engine  # noqa: E402
from hitlgate.engine.ledger import _store_schema as t  # noqa: E402

#: What this benchmark measured on main before the issue-9 flows work (commit 9d47f35; run with
#: ``--before 9d47f35 --after 61ac3f1``, 3 interleaved rounds of 30 flows, 8 clients for 10 s; 2 cores
#: shared with other jobs at load average 9-10, so absolute numbers are several times an idle machine's).
#: Printed when no ``--before`` is given.
BEFORE: dict[str, float] = {
    "cpu_ms_per_flow_sqlite": 101.12,
    "wall_ms_per_flow_sqlite": 713.56,
    "statements_per_flow_sqlite": 96.0,
    "commits_per_flow_sqlite": 9.0,
    "cpu_ms_per_flow_postgresql": 158.27,
    "wall_ms_per_flow_postgresql": 1161.86,
    "statements_per_flow_postgresql": 87.0,
    "commits_per_flow_postgresql": 9.0,
    "flows_per_s_sqlite": 1.54,
    "flows_per_s_postgresql": 1.48,
}

#: Server settings that make the throwaway cluster durable (the last ``-c`` of a name wins).
DURABLE_PG = ("fsync=on", "synchronous_commit=on", "full_page_writes=on")

SMOKE: dict[str, Any] = {"rounds": 1, "n": 5, "clients": 2, "seconds": 1.0, "postgres": False, "before": None,
                         "throughput": True}
FULL: dict[str, Any] = {"rounds": 5, "n": 40, "clients": 8, "seconds": 10.0, "postgres": True, "before": None,
                        "throughput": True}

#: Flows whose statements and commits are counted (after the timed ones).
COUNTED_FLOWS = 5


def _demo_key(name: str) -> Ed25519PrivateKey:
    """The example inventory's demo key of ``name`` (the engine runs in demo mode)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"hitlgate-demo-approver:{name}".encode()).digest())


def _proposal(tag: str) -> dict[str, Any]:
    """A single-approval proposal (carol's team) with a unique parameter, so every action digest differs."""
    return {
        "action": {"type": "suspend_service_account", "target": "svc-ci-runner", "parameters": {"ticket": tag}},
        "requester": {"id": "soc-agent-7", "kind": "agent"},
        "justification": "bench_flows",
    }


class Flows:
    """One engine on one store, running flows."""

    def __init__(self, url: str, key_dir: Path, *, cache: bool = True) -> None:
        config = Config(state_url=url, key_dir=key_dir)
        decider = Decider.from_config(config)
        self.engine = Engine(config, decider if cache else uncached(decider), demo=True)
        self.guard = self.engine.guard()
        self.carol = _demo_key("carol")
        self.tag = f"{os.getpid()}-{time.monotonic_ns()}"
        self.count = 0

    def flow(self) -> str:
        """Propose, approve, fetch the warrant, execute through the guard; return the request id."""
        self.count += 1
        doc = _proposal(f"{self.tag}-{self.count}")
        engine = self.engine
        req = engine.propose(doc)
        engine.approve(sign(Statement(req.id, req.action_digest, "approve", "carol", engine.now()), self.carol))
        token = engine.warrant(req.id).token
        self.guard.execute(token, doc["action"], lambda action: None)
        return req.id

    def close(self) -> None:
        """Release the store and the policy engine."""
        self.engine.close()


@contextmanager
def counting(engine: sa.engine.Engine) -> Iterator[dict[str, int]]:
    """Count SQL statements, commits and fsyncs of a SQLite log file (``-wal``) while the block runs."""
    counts = {"statements": 0, "commits": 0, "wal_fsyncs": 0}
    real_fsync = os.fsync

    def on_execute(*_args: Any) -> None:
        counts["statements"] += 1

    def on_commit(*_args: Any) -> None:
        counts["commits"] += 1

    def fsync(fd: int) -> None:
        with contextlib.suppress(OSError):
            counts["wal_fsyncs"] += os.readlink(f"/proc/self/fd/{fd}").endswith("-wal")
        real_fsync(fd)

    sa_event.listen(engine, "before_cursor_execute", on_execute)
    sa_event.listen(engine, "commit", on_commit)
    os.fsync = fsync
    try:
        yield counts
    finally:
        os.fsync = real_fsync
        sa_event.remove(engine, "before_cursor_execute", on_execute)
        sa_event.remove(engine, "commit", on_commit)


# -- what one child process measures ------------------------------------------


def _proc_times(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, own CPU ticks, ticks of its reaped children) of a process, from ``/proc`` (None if gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces, parentheses and bytes that are not UTF-8: the fields
    # after it follow the last ')'.
    fields = raw[raw.rindex(b")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def postmaster_pid(engine: sa.engine.Engine) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine and ``/proc`` shows it (else None).

    The pid its data directory's ``postmaster.pid`` names, and only if the backend serving this connection
    is its child here: a server elsewhere (whose pids mean nothing on this machine), or one this user may
    not ask for its data directory (``SHOW data_directory`` needs a superuser or pg_read_all_settings) or
    read it, gives None.
    """
    try:
        with engine.connect() as conn:
            backend = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            data = str(conn.exec_driver_sql("SHOW data_directory").scalar_one())
    except sa.exc.DBAPIError:
        return None
    try:
        postmaster = int((Path(data) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    times = _proc_times(backend)
    return postmaster if times is not None and times[0] == postmaster else None


def server_cpu_s(postmaster: int) -> float:
    """CPU seconds used so far by a PostgreSQL server: its main process, every process it started, and those
    that have exited (the backends serving the clients, the WAL writer, the checkpointer, ...).

    A child reaped while the children are read would be in neither sum: the count is taken again until
    the main process's reaped-children time is the same before and after it.
    """
    for _ in range(100):
        before = _proc_times(postmaster)
        if before is None:
            break
        ticks = before[1] + before[2]
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and int(entry.name) != postmaster:
                times = _proc_times(int(entry.name))
                if times is not None and times[0] == postmaster:
                    ticks += times[1]
        after = _proc_times(postmaster)
        if after is not None and after[2] == before[2]:
            return ticks / os.sysconf("SC_CLK_TCK")
    raise RuntimeError(f"the PostgreSQL server (pid {postmaster}) is gone, or its processes kept exiting")


def cpu_ceiling(cores: int, cpu_ms_per_flow: float) -> float:
    """Flows/s the machine could complete if every core did nothing but flows: ``cores`` seconds of CPU per
    second, divided by the CPU one flow costs (the clients' and, for PostgreSQL, the server's)."""
    return cores * 1e3 / cpu_ms_per_flow


def measure_cpu(url: str, key_dir: Path, n: int, *, cache: bool = True) -> dict[str, float]:
    """CPU and wall ms per flow over ``n`` flows (after warm-up), then statements and commits per flow.

    On PostgreSQL also ``server_cpu_ms``: what the server's processes used over the same flows (when the
    server runs on this machine; absent otherwise).
    """
    runner = Flows(url, key_dir, cache=cache)
    try:
        for _ in range(5):  # Warm caches, the pool and the policy engine.
            runner.flow()
        server = postmaster_pid(runner.engine.store.engine) if url.startswith("postgresql") else None
        s0 = server_cpu_s(server) if server is not None else 0.0
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            runner.flow()
        cpu = (time.process_time() - c0) / n * 1e3
        wall = (time.perf_counter() - w0) / n * 1e3
        server_ms = (server_cpu_s(server) - s0) / n * 1e3 if server is not None else None
        with counting(runner.engine.store.engine) as counts:
            for _ in range(COUNTED_FLOWS):
                runner.flow()
        runner.engine.verify_audit()
        with runner.engine.store.read() as tx:
            sync = tx.conn.exec_driver_sql("PRAGMA synchronous").scalar() if url.startswith("sqlite") else -1
    finally:
        runner.close()
    out = {"cpu_ms": cpu, "wall_ms": wall, "statements": counts["statements"] / COUNTED_FLOWS,
           "commits": counts["commits"] / COUNTED_FLOWS, "sqlite_synchronous": float(sync or 0),
           "wal_fsyncs": counts["wal_fsyncs"] / COUNTED_FLOWS}
    if server_ms is not None:
        out["server_cpu_ms"] = server_ms
    return out


def _client(url: str, key_dir: str, barrier: Any, go: Any, deadline_box: Any, results: Any) -> None:
    """One client process: warm up, wait for the common start, run flows until the deadline."""
    try:
        runner = Flows(url, Path(key_dir))
        runner.flow()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run.
        results.put({"error": f"setup: {type(exc).__name__}: {exc}"})
        barrier.abort()
        return
    barrier.wait()
    go.wait()  # Set once the parent has fixed the common deadline.
    start = time.time()
    deadline = deadline_box.value
    ids: list[str] = []
    errors: list[str] = []
    while time.time() < deadline:
        try:
            ids.append(runner.flow())
        except Exception as exc:  # noqa: BLE001 - counted and reported, the run fails on any.
            errors.append(f"{type(exc).__name__}: {exc}")
    end = time.time()
    runner.close()
    results.put({"ids": ids, "errors": errors, "start": start, "end": end})


def measure_throughput(url: str, key_dir: Path, *, clients: int, seconds: float) -> dict[str, float]:
    """Flows per second with ``clients`` processes on one store; checks exactly-once consumption and the chain."""
    setup = Flows(url, key_dir)  # Creates the schema, the engine keyring and the anchor.
    setup.flow()
    setup.close()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(clients + 1)
    go = ctx.Event()
    deadline_box = ctx.Value("d", 0.0)
    results = ctx.Queue()
    procs = [ctx.Process(target=_client, args=(url, str(key_dir), barrier, go, deadline_box, results))
             for _ in range(clients)]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=600)
    except Exception as exc:
        for p in procs:
            p.kill()
        why = results.get(timeout=5) if not results.empty() else exc
        raise RuntimeError(f"a client failed to start: {why}") from None
    deadline_box.value = time.time() + seconds
    go.set()
    reports = [results.get(timeout=seconds + 600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    failed = [e for r in reports for e in r.get("errors", [])]
    if failed:
        raise RuntimeError(f"{len(failed)} flow(s) failed under concurrency, first: {failed[0]}")
    ids = [i for r in reports for i in r["ids"]]
    elapsed = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    check_exactly_once(url, key_dir, ids)
    return {"flows": float(len(ids)), "elapsed_s": elapsed, "flows_per_s": len(ids) / elapsed}


def check_exactly_once(url: str, key_dir: Path, ids: list[str]) -> None:
    """Every flow's warrant consumed exactly once (table and chain), and ``audit verify`` passes."""
    config = Config(state_url=url, key_dir=key_dir)
    engine = Engine(config, uncached(Decider.from_config(config)), demo=True)
    try:
        with engine.store.read() as tx:
            conn = tx.conn

            def per_request(q: Any) -> dict[str, int]:
                return {str(rid): int(n) for rid, n in conn.execute(q)}

            warrants = per_request(sa.select(t.warrants.c.request_id, sa.func.count()).group_by(
                t.warrants.c.request_id))
            consumed = per_request(sa.select(t.consumed.c.request_id, sa.func.count()).group_by(
                t.consumed.c.request_id))
            events = per_request(
                sa.select(t.audit_events.c.request_id, sa.func.count())
                .where(t.audit_events.c.kind == "consumed").group_by(t.audit_events.c.request_id))
            statuses = dict(conn.execute(sa.select(t.requests.c.id, t.requests.c.status)).all())
        bad = [rid for rid in ids if (warrants.get(rid), consumed.get(rid), events.get(rid), statuses.get(rid))
               != (1, 1, 1, "executed")]
        if bad or len(set(ids)) != len(ids):
            raise AssertionError(f"{len(bad)} request(s) not consumed exactly once, e.g. {bad[:3]}")
        if any(n != 1 for n in consumed.values()) or any(n != 1 for n in events.values()):
            raise AssertionError("a warrant was consumed more than once")
        engine.verify_audit()
    finally:
        engine.close()


def _child_main(argv: list[str]) -> None:
    """``--child cpu|throughput``: measure once in this process and print one JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", choices=("cpu", "throughput"), required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--key-dir", type=Path, required=True)
    ap.add_argument("--expect-root", type=Path, required=True)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args(argv)
    loaded = Path(hitlgate.__file__).resolve().parents[1]
    if loaded != args.expect_root.resolve():
        raise SystemExit(f"measuring the wrong code: hitlgate from {loaded}, expected {args.expect_root}")
    if args.child == "cpu":
        out = measure_cpu(args.url, args.key_dir, args.n, cache=not args.no_cache)
    else:
        out = measure_throughput(args.url, args.key_dir, clients=args.clients, seconds=args.seconds)
    print(json.dumps(out))


def _in_child(root: Path, tmp: Path, *args: str) -> dict[str, float]:
    """Run ``--child ...`` on the ``hitlgate`` under ``root`` in a fresh process; its JSON result."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args, "--expect-root", str(root)],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=1800, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {' '.join(args[:2])} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _extract(ref: str, dest: Path) -> Path:
    """The tree of git revision ``ref`` (the parts the engine loads), extracted under ``dest``."""
    archive = subprocess.run(["git", "-C", str(_ROOT), "archive", "--format=tar", ref, "hitlgate", "policies",
                              "schemas", "starter"], capture_output=True, check=True, timeout=120).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def durability(url: str) -> str:
    """PostgreSQL's commit durability settings, read back from the server."""
    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            fsync = conn.exec_driver_sql("SHOW fsync").scalar()
            commit = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
            return f"fsync={fsync} synchronous_commit={commit}"
    finally:
        eng.dispose()


# -- the harness entry point ---------------------------------------------------


def _options(size_or_options: Any) -> dict[str, Any]:
    if isinstance(size_or_options, Mapping):
        return {**FULL, **size_or_options}
    if size_or_options in (None, "full", "default"):
        return dict(FULL)
    if size_or_options == "smoke":
        return dict(SMOKE)
    raise ValueError(f"unknown size {size_or_options!r}: use 'smoke', 'full' or a dict of options")


def run(size_or_options: Any = "full", *, log: Callable[[str], None] | None = None) -> dict[str, float]:
    """Run the benchmark: ``"smoke"`` (seconds), ``"full"``, or a dict overriding :data:`FULL`; returns numbers.

    Options: ``rounds``, ``n`` (flows per round), ``clients``, ``seconds``,
    ``postgres`` and ``throughput`` (bools), ``before`` (a git revision to measure alongside, or None),
    ``after`` (a git revision to measure instead of this checkout, or None).
    Raises if any flow fails, any warrant is not consumed exactly once, or ``audit verify`` fails.
    """
    opts = _options(size_or_options)
    say = log or (lambda _msg: None)
    out: dict[str, float] = {"clients": float(opts["clients"]), "n": float(opts["n"]),
                             "rounds": float(opts["rounds"])}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-flows-")))
        after = _extract(str(opts["after"]), tmp / "after") if opts.get("after") else _ROOT
        sides = {"": after}
        if opts["before"]:
            sides = {"before_": _extract(str(opts["before"]), tmp / "before"), "": after}
        new_url: dict[str, Callable[[str], str]] = {"sqlite": lambda name: f"sqlite:///{tmp / name}.db"}
        if opts["postgres"]:
            from tests._pgcluster import pg_bindir, running_cluster

            bindir = pg_bindir()
            if bindir is None:
                raise RuntimeError("PostgreSQL is not installed (scripts/install-postgres); pass postgres=False")
            cluster = stack.enter_context(running_cluster(bindir, settings=DURABLE_PG))
            new_url["postgresql"] = cluster.new_database
            setting = durability(cluster.new_database("probe"))
            say(f"postgresql: {setting}")
            out["pg_synchronous_commit_on"] = float("fsync=on synchronous_commit=on" in setting)
        serial = iter(range(10**6))
        cpu: dict[tuple[str, str, str], list[dict[str, float]]] = {}
        for r in range(int(opts["rounds"])):
            say(f"cpu per flow: round {r + 1} of {opts['rounds']} ({opts['n']} flows each, cache on and off)")
            for prefix, root in sides.items():
                for db, make in new_url.items():
                    for suffix, flag in (("", ()), ("_nocache", ("--no-cache",))):
                        name = f"cpu{next(serial)}"
                        res = _in_child(root, tmp, "--child", "cpu", "--url", make(name), "--key-dir",
                                        str(tmp / f"{name}-keys"), "--n", str(opts["n"]), *flag)
                        cpu.setdefault((prefix, db, suffix), []).append(res)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        out["cores"] = float(cores)
        for (prefix, db, suffix), results in cpu.items():
            out[f"{prefix}cpu_ms_per_flow_{db}{suffix}"] = statistics.median(x["cpu_ms"] for x in results)
            out[f"{prefix}wall_ms_per_flow_{db}{suffix}"] = statistics.median(x["wall_ms"] for x in results)
            if suffix:
                continue
            machine_ms = out[f"{prefix}cpu_ms_per_flow_{db}"]
            if all("server_cpu_ms" in x for x in results):
                server_ms = statistics.median(x["server_cpu_ms"] for x in results)
                out[f"{prefix}server_cpu_ms_per_flow_{db}"] = server_ms
                machine_ms += server_ms
            if db == "sqlite" or f"{prefix}server_cpu_ms_per_flow_{db}" in out:
                # Without the server's share (a server elsewhere) a PostgreSQL ceiling would read too high.
                out[f"{prefix}cpu_ceiling_flows_per_s_{db}"] = cpu_ceiling(cores, machine_ms)
            out[f"{prefix}statements_per_flow_{db}"] = results[-1]["statements"]
            out[f"{prefix}commits_per_flow_{db}"] = results[-1]["commits"]
            if db == "sqlite":
                out[f"{prefix}sqlite_synchronous"] = results[-1]["sqlite_synchronous"]
                out[f"{prefix}sqlite_wal_fsyncs_per_flow"] = results[-1]["wal_fsyncs"]
        for db, make in new_url.items() if opts["throughput"] else ():
            for prefix, root in sides.items():
                name = f"tp{next(serial)}"
                say(f"throughput: {opts['clients']} client processes on {db} for {opts['seconds']} s "
                    f"({'before' if prefix else 'this checkout'})")
                tp = _in_child(root, tmp, "--child", "throughput", "--url", make(name), "--key-dir",
                               str(tmp / f"{name}-keys"), "--clients", str(opts["clients"]),
                               "--seconds", str(opts["seconds"]))
                out[f"{prefix}flows_per_s_{db}"] = tp["flows_per_s"]
                out[f"{prefix}flows_{db}"] = tp["flows"]
    return out


def _print(results: Mapping[str, float]) -> None:
    live = any(k.startswith("before_") for k in results)
    print(f"{'metric':<36} {'before':>9} {'after':>9} {'after/before':>13}"
          f"   (before: {'measured in this run' if live else 'recorded on a2be8a0, see BEFORE'})")
    for key, value in results.items():
        if key.startswith("before_"):
            continue
        before = results.get(f"before_{key}") if live else BEFORE.get(key)
        ratio = f"{value / before:>13.2f}" if before else f"{'':>13}"
        shown = f"{before:>9.2f}" if before is not None else f"{'-':>9}"
        print(f"{key:<36} {shown} {value:>9.2f} {ratio}")


def main() -> None:
    """Command line: run and print before/after numbers."""
    if "--child" in sys.argv:
        _child_main(sys.argv[1:])
        return
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a few seconds, SQLite only")
    ap.add_argument("--before", help="a git revision to measure in the same rounds (e.g. a2be8a0)")
    ap.add_argument("--after", help="a git revision to measure instead of this checkout's working tree")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--n", type=int, help="flows per round")
    ap.add_argument("--clients", type=int)
    ap.add_argument("--seconds", type=float, help="throughput run length")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-throughput", action="store_true", help="CPU, statements and commits only")
    args = ap.parse_args()
    opts = dict(SMOKE if args.smoke else FULL)
    for name in ("before", "after", "rounds", "n", "clients", "seconds"):
        if getattr(args, name) is not None:
            opts[name] = getattr(args, name)
    if args.no_postgres:
        opts["postgres"] = False
    if args.no_throughput:
        opts["throughput"] = False
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    results = run(opts, log=lambda msg: print(msg, flush=True))
    _print(results)


if __name__ == "__main__":
    main()

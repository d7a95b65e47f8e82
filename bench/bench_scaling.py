"""Scaling benchmark: what one decision costs at 100 to 1,000,000 identities.

For each size an inventory is generated (``bench.gen_inventory``, seeded;
YAML up to 10,000 identities, JSON Lines above when the engine reads them)
and measured in fresh processes, so one size's memory never leaks into the
next one's numbers:

* **start**: process start to first decision: a new Python process imports
  hitlgate, builds ``Decider.from_config`` on the inventory and decides one
  proposal (median of ``start_rounds`` processes), with the RSS it has then;
* **queries** (one worker process per size, every mode interleaved round by
  round, the median of the rounds' p50 and p99 reported):
  ``raw regopy`` (set the input the engine evaluates and query the compiled
  bundle, nothing else), ``decide embedded`` (``Decider.decide``: validation,
  facts, evaluation, decision checks; the exact decision cache off, so every
  call evaluates), ``decide embedded cached`` (the same 50 proposals again,
  every call answered by the exact decision cache; never a goal row),
  ``decide opa`` (the same through the OPA backend) and ``raw opa``
  (``POST /v1/data/hitlgate/decision`` with the same input, keep-alive)
  against a real ``opa run --server``; the cyclic garbage collector stays
  on, settled once the engines are built as ``hitlgate serve`` settles it
  (``hitlgate.service.collector``), so its collections count in the p99;
* **threads**: extra RSS per thread that decides (each has its own regopy
  interpreter) and that thread's first decision;
* **change**: one identity's record is rewritten on disk (its environment
  flips between development and production); the time until the next
  decision reflects it.

Everything goes through the public engine API (``Config``, ``Decider``,
``backend_from_config``); the raw modes use the engine's own compiled
interpreter and the input it evaluates, whichever way the engine builds
that input (the whole inventory in ``data`` or the target's neighbourhood
in ``input.inventory``). A size that does not finish within ``size_timeout``
seconds, or grows past ``max_rss_mb``, is reported as such with what it
measured until then.

    python -m bench.bench_scaling [--sizes 100,10000] [--smoke] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench._nocache import uncached
from bench.gen_inventory import Spec, proposals, write_inventory, write_jsonl_shards

REPO = Path(__file__).resolve().parents[1]
FULL_SIZES = (100, 10_000, 100_000, 1_000_000)
SMOKE_SIZES = (100,)
#: The identity whose record the change test rewrites (kept in a file of its own).
CHANGING_ID = "bench-changing-key"
CHANGE_FILE = "inventory-bench-change.yaml"

FULL = {
    "sizes": FULL_SIZES,
    "seed": 1,
    "n": 500,  # proposals per mode per round (fewer when a mode is slow, see round_budget_s)
    "rounds": 5,
    "round_budget_s": 15.0,
    "start_rounds": 3,
    "threads": 2,
    "change_rounds": 3,
    "size_timeout": 1800.0,
    "max_rss_mb": 6000,
    "sanity": 40,  # proposals on which raw, embedded and OPA must agree before anything is timed
    "workdir": None,
}
SMOKE = {
    **FULL,
    "sizes": SMOKE_SIZES,
    "n": 40,
    "rounds": 2,
    "round_budget_s": 2.0,
    "start_rounds": 1,
    "threads": 1,
    "change_rounds": 1,
    "size_timeout": 120.0,
    "sanity": 8,
}

MODES = ("raw_regopy", "decide_embedded", "decide_embedded_cached", "decide_opa", "raw_opa")


# ---------------------------------------------------------------------------
# Small helpers shared by the parent and the worker processes.
# ---------------------------------------------------------------------------


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process in MB (from /proc; 0 where there is none)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pct(samples: list[float], q: float) -> float:
    """Percentile ``q`` (0..100) of ``samples`` (nearest rank)."""
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def find_opa() -> Path | None:
    """The OPA binary: ``$HITLGATE_OPA``, else the one ``hitlgate opa install`` caches; None if neither."""
    env = os.environ.get("HITLGATE_OPA")
    if env and Path(env).is_file():
        return Path(env)
    from hitlgate.engine.decide._opabin import cached_opa_path

    cached = cached_opa_path()
    return cached if cached.is_file() else None


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when its parent dies (no orphaned OPA)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def opa_server(opa: Path, bundle: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], float]]:
    """Run ``opa run --server`` on ``bundle``; yield (url, process, seconds until healthy)."""
    import requests

    port = _free_port()
    cmd = [str(opa), "run", "--server", "--log-level", "error", "--addr", f"127.0.0.1:{port}", "--bundle", str(bundle)]
    t0 = time.perf_counter()
    with log.open("ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"opa exited with {proc.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/health?bundles", timeout=0.5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("opa did not become healthy in 120 s")
            time.sleep(0.02)
        yield url, proc, time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def change_record(environment: str) -> dict[str, Any]:
    """The record of :data:`CHANGING_ID`: a low-privilege internal API key in ``environment``."""
    return {"kind": "api_key", "environment": environment, "owner": "team-00000", "privilege": "low", "used_by": []}


def write_change_file(data_dir: Path, environment: str) -> None:
    """(Re)write the file holding :data:`CHANGING_ID` atomically, as a deploy or a CMDB sync would."""
    text = f"identities:\n  {json.dumps(CHANGING_ID)}: {json.dumps(change_record(environment))}\n"
    tmp = data_dir / f".{CHANGE_FILE}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, data_dir / CHANGE_FILE)


def change_proposal(n: int) -> dict[str, Any]:
    """A proposal on :data:`CHANGING_ID`: auto-allowed in development, single approval in production."""
    return {
        "action": {"type": "rotate_api_key", "target": CHANGING_ID, "parameters": {"n": n}},
        "requester": {"id": "bench-agent", "kind": "agent"},
        "justification": "change visibility",
    }


# ---------------------------------------------------------------------------
# Engine adapters: the raw paths read the engine's own interpreter and input.
# ---------------------------------------------------------------------------


def engine_config(data_dir: Path, opa_url: str | None = None) -> Any:
    """A Config on the bundled policy and ``data_dir`` (embedded, or the OPA backend at ``opa_url``)."""
    from hitlgate.engine import BackendConfig, Config
    from hitlgate.engine._resources import bundled_policy_dir

    backend = BackendConfig() if opa_url is None else BackendConfig(kind="opa", url=opa_url, timeout_ms=10_000)
    return Config(policy_dir=bundled_policy_dir(), data_paths=(data_dir,), backend=backend)


def input_builder(backend: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The input the backend evaluates for a proposal document.

    With the facts index (issue 9) the backend evaluates the proposal plus
    the target's neighbourhood under ``inventory``; before it, the proposal
    alone (the inventory was compiled in as ``data.inventory``).
    """
    own = getattr(backend, "evaluation_input", None)
    if own is not None:
        # The backend's own input: the proposal and the facts its policy may read.
        return lambda doc: dict(own(doc)[0])
    facts = getattr(backend, "facts", None)
    if facts is None:
        return lambda doc: doc
    from hitlgate.engine.decide.backends import with_facts  # type: ignore[attr-defined,unused-ignore]

    def build(doc: dict[str, Any]) -> dict[str, Any]:
        return dict(with_facts(doc, facts.current())[0])

    return build


def bundle_source(data_dir: Path) -> Any:
    """What the OPA bundle is built from: the modules alone (issue 9) or the whole pack (before)."""
    from hitlgate.engine._resources import bundled_policy_dir
    from hitlgate.engine.decide import policy

    modules = getattr(policy, "PolicyModules", None)
    if modules is not None:
        return modules.load(bundled_policy_dir())
    return policy.PolicyPack.load(bundled_policy_dir(), [data_dir])


def raw_regopy(backend: Any) -> Callable[[dict[str, Any]], Any]:
    """Query the backend's own compiled bundle (this thread's) with an input: the floor under decide."""
    compiled = getattr(getattr(backend, "_local", None), "compiled", None)
    if compiled is None:
        raise RuntimeError("the embedded backend keeps no compiled bundle for this thread; decide once first")
    interp, bundle = compiled.interpreter, compiled.bundle

    evaluate = getattr(sys.modules[type(backend).__module__], "evaluate_input", None)

    def query(doc: dict[str, Any]) -> Any:
        if evaluate is not None:
            # The engine's own query (set the input, evaluate, read the output), nothing around it.
            return evaluate(interp, bundle, doc)
        import regopy

        from hitlgate.engine.decide.policy import DECISION_PATH

        interp.set_input(regopy.Input(doc))
        out = interp.query_bundle_entrypoint(bundle, DECISION_PATH)
        return out.results[0].expressions[0]

    return query


# ---------------------------------------------------------------------------
# The start probe (a fresh process per measurement).
# ---------------------------------------------------------------------------


def probe_main(data_dir: Path, size: int, seed: int) -> None:
    """Import, build the decider, decide once; print one JSON line (run in a fresh process)."""
    t0 = time.perf_counter()
    from hitlgate.engine import Decider

    t_import = time.perf_counter()
    decider = uncached(Decider.from_config(engine_config(data_dir)))
    t_init = time.perf_counter()
    decision = decider.decide(proposals(Spec(size, seed), 1)[0])
    t_first = time.perf_counter()
    print(json.dumps({
        "import_s": t_import - t0,
        "init_s": t_init - t_import,
        "first_decide_s": t_first - t_init,
        "rss_mb": rss_mb(),
        "tier": decision.tier,
        "fail_closed": decision.to_dict().get("fail_closed"),
    }), flush=True)


# ---------------------------------------------------------------------------
# The worker (one process per size).
# ---------------------------------------------------------------------------


def emit(key: str, value: Any) -> None:
    """Report one measurement to the parent (a JSON line, so partial results survive a timeout)."""
    print(json.dumps({"key": key, "value": value}), flush=True)


def _measure(fn: Callable[[Any], Any], inputs: list[Any], count: int, offset: int) -> list[float]:
    """Per-call latency in ms of ``count`` calls cycling through ``inputs`` from ``offset``."""
    samples = []
    clock = time.perf_counter_ns
    # The collector stays on, as in a served process (worker_main settles it as `hitlgate serve` does):
    # its collections are part of a decision's p99.
    for k in range(count):
        doc = inputs[(offset + k) % len(inputs)]
        t0 = clock()
        fn(doc)
        samples.append((clock() - t0) / 1e6)
    return samples


def _comparable(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "policy_revision"}


def worker_main(data_dir: Path, size: int, opts: dict[str, Any]) -> None:
    """Measure one size (see the module docstring); every result is emitted as soon as it is known.

    The worker is itself a fresh process: its first decision comes before
    anything else and counts as one sample of "process start to first decision".
    """
    t0 = time.perf_counter()
    from hitlgate.engine import Decider
    from hitlgate.service.collector import settle_for_serving

    t_import = time.perf_counter()
    # SIGTERM from the parent (timeout, memory cap) unwinds, so the OPA server is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    spec = Spec(size, opts["seed"])
    embedded = uncached(Decider.from_config(engine_config(data_dir)))
    t_init = time.perf_counter()
    props = proposals(spec, max(opts["n"], 50))
    first = embedded.decide(props[0])
    emit("first_decision", {
        "import_s": t_import - t0,
        "init_s": t_init - t_import,
        "first_decide_s": time.perf_counter() - t_init,
        "rss_mb": rss_mb(),
        "tier": first.tier,
        "fail_closed": first.to_dict().get("fail_closed"),
    })
    if first.to_dict().get("fail_closed"):
        raise RuntimeError(f"the embedded engine fails closed: {first.reasons}")
    import requests

    build_input = input_builder(embedded.backend)
    inputs = [build_input(p) for p in props]
    raw = raw_regopy(embedded.backend)
    # The raw path must give the engine's own answer, or it measures something else.
    checks = list(zip(props, inputs, strict=True))[: opts["sanity"]]
    for p, doc in checks:
        want = _comparable(embedded.decide(p).to_dict())
        got = raw(doc)
        assert got["tier"] == want["tier"] and got["risk_factors"] == want["risk_factors"], (got, want)

    opa = find_opa()
    # The exact decision cache on its own: the same 50 proposals again and again (every call a hit,
    # after the warm-up). The goal rows come from `decide_embedded`, whose cache is off.
    cached = Decider.from_config(engine_config(data_dir))
    repeats = props[:50]
    for p in repeats:
        cached.decide(p)
    fns: dict[str, tuple[Callable[[Any], Any], list[Any]]] = {
        "raw_regopy": (raw, inputs),
        "decide_embedded": (embedded.decide, props),
        "decide_embedded_cached": (cached.decide, repeats),
    }
    with contextlib.ExitStack() as stack:
        if opa is None:
            emit("note", "OPA not found ($HITLGATE_OPA or `hitlgate opa install`): OPA modes skipped")
        else:
            from hitlgate.engine.decide._bundle import write_bundle

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-opa-")))
            t_b = time.perf_counter()
            bundle = write_bundle(bundle_source(data_dir), tmp / "hitlgate.tar.gz")
            emit("opa_bundle_s", time.perf_counter() - t_b)
            emit("opa_bundle_mb", bundle.stat().st_size / 1e6)
            url, proc, started = stack.enter_context(opa_server(opa, bundle, tmp / "opa.log"))
            emit("opa_start_s", started)
            opa_decider = Decider.from_config(engine_config(data_dir, url))
            stack.callback(opa_decider.close)
            session = stack.enter_context(requests.Session())
            endpoint = f"{url}/v1/data/hitlgate/decision"

            def raw_opa(doc: dict[str, Any]) -> Any:
                r = session.post(endpoint, json={"input": doc}, timeout=30)
                r.raise_for_status()
                return r.json()["result"]

            for p, doc in checks:
                want = _comparable(embedded.decide(p).to_dict())
                assert _comparable(opa_decider.decide(p).to_dict()) == want, p
                got = raw_opa(doc)
                assert got["tier"] == want["tier"] and got["risk_factors"] == want["risk_factors"], (got, want)
            fns["decide_opa"] = (opa_decider.decide, props)
            fns["raw_opa"] = (raw_opa, inputs)
            emit("opa_rss_mb", rss_mb(proc.pid))

        # Measured as `hitlgate serve` decides: the collector on, settled once the engine is built (what
        # is loaded frozen out of its walks, the youngest generation's threshold raised; service.collector).
        threshold = gc.get_threshold()
        settle_for_serving()
        stack.callback(gc.set_threshold, *threshold)
        stack.callback(gc.unfreeze)
        # Warm up, and size each mode's batch so a slow mode cannot take the whole time budget.
        counts: dict[str, int] = {}
        for name, (fn, docs) in fns.items():
            warm = _measure(fn, docs, min(len(docs), 20), 0)
            est = statistics.fmean(warm) / 1000
            counts[name] = max(10, min(opts["n"], int(opts["round_budget_s"] / max(est, 1e-6))))
        emit("calls_per_round", counts)
        per_round: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
        order = list(fns)
        for r in range(opts["rounds"]):
            # Rotate the order, so no mode always runs right after the same other one.
            for name in order[r % len(order):] + order[: r % len(order)]:
                fn, docs = fns[name]
                s = _measure(fn, docs, counts[name], r * counts[name])
                per_round[name].append((pct(s, 50), pct(s, 99)))
        for name, rows in per_round.items():
            emit(f"{name}_p50_ms", statistics.median(p50 for p50, _ in rows))
            emit(f"{name}_p99_ms", statistics.median(p99 for _, p99 in rows))
            emit(f"{name}_rounds", rows)

        if "decide_opa" in fns and opa is not None:
            emit("opa_rss_after_mb", rss_mb(proc.pid))

    _threads(embedded, props, opts["threads"])
    _change(embedded, data_dir, opts["change_rounds"], opts)
    embedded.close()


def _threads(decider: Any, props: list[dict[str, Any]], k: int) -> None:
    """Extra RSS per thread that decides, and its first decision, with ``k`` threads alive at once."""
    gc.collect()
    before = rss_mb()
    firsts: list[float] = []
    done = threading.Barrier(k + 1)
    release = threading.Event()

    def run(i: int) -> None:
        t0 = time.perf_counter()
        decider.decide(props[i % len(props)])
        firsts.append(time.perf_counter() - t0)
        for p in props[:20]:
            decider.decide(p)
        done.wait()
        release.wait()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    done.wait()
    after = rss_mb()
    release.set()
    for t in threads:
        t.join()
    emit("thread_extra_rss_mb", max(0.0, (after - before) / k))
    emit("thread_first_decide_ms", statistics.median(firsts) * 1000)


def _change(decider: Any, data_dir: Path, rounds: int, opts: dict[str, Any]) -> None:
    """Seconds from rewriting one identity's record to the first decision that reflects it."""
    want = {"development": "auto_allow", "production": "single_approval"}
    envs = ["production", "development"]
    n = 0
    tier = decider.decide(change_proposal(n)).tier
    if tier != want["development"]:
        raise RuntimeError(f"{CHANGING_ID} starts as {tier}, not auto_allow")
    took: list[float] = []
    limit = min(300.0, opts["size_timeout"] / 3)
    for r in range(rounds):
        env = envs[r % 2]
        # A file written in the same clock tick as the last one could look unchanged to an mtime check.
        time.sleep(0.05)
        write_change_file(data_dir, env)
        t0 = time.perf_counter()
        while True:
            n += 1
            if decider.decide(change_proposal(n)).tier == want[env]:
                break
            if time.perf_counter() - t0 > limit:
                emit("change_note", f"the change was not visible after {limit:.0f} s")
                return
        took.append(time.perf_counter() - t0)
        if took[-1] > 20:
            break
    emit("change_visible_s", statistics.median(took))
    emit("change_visible_rounds", took)
    # Leave the file as it was generated, for the next run on the same directory.
    if envs[(len(took) - 1) % 2] == "production":
        write_change_file(data_dir, "development")


# ---------------------------------------------------------------------------
# The parent: generate, run the processes, collect.
# ---------------------------------------------------------------------------


def jsonl_supported() -> bool:
    """Whether the engine reads ``*.jsonl`` inventories (probed through the public API)."""
    import logging

    from hitlgate.engine import Decider

    # An engine without JSON Lines support logs the empty inventory as an error: expected here, not news.
    logging.disable(logging.CRITICAL)
    with contextlib.ExitStack() as stack:
        stack.callback(logging.disable, logging.NOTSET)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-jsonl-probe-"))
        spec = Spec(20, 1)
        write_inventory(spec, Path(tmp), "jsonl")
        try:
            decider = Decider.from_config(engine_config(Path(tmp)))
            d = decider.decide(proposals(spec, 1, unknown_share=0.0)[0]).to_dict()
            decider.close()
        except Exception:  # noqa: BLE001 - any failure means "not supported" here.
            return False
    return "unknown_target" not in d["risk_factors"] and not d.get("fail_closed")


def prepare(size: int, seed: int, root: Path, fmt: str) -> tuple[Path, float]:
    """The data directory for ``size`` (generated once per workdir); returns (dir, seconds to generate)."""
    data_dir = root / f"inventory-{size}-seed{seed}-{fmt}-v2"
    marker = data_dir / ".complete"
    if marker.exists():
        return data_dir, 0.0
    shutil.rmtree(data_dir, ignore_errors=True)
    t0 = time.perf_counter()
    if fmt == "jsonl":
        # Files of at most 250,000 lines (~40 MB), under the engine's default 64 MiB per inventory file.
        write_jsonl_shards(Spec(size, seed), data_dir)
    else:
        write_inventory(Spec(size, seed), data_dir, fmt)
    write_change_file(data_dir, "development")
    took = time.perf_counter() - t0
    marker.write_text("ok\n")
    return data_dir, took


class _Child:
    """A child process whose stdout lines are collected by a thread, watched for time and memory."""

    def __init__(self, args: list[str], timeout: float, max_rss_mb: float) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_scaling", *args],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.timeout = timeout
        self.max_rss_mb = max_rss_mb
        self.lines: queue.Queue[tuple[float, str | None]] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        self.killed: str | None = None
        self.peak_rss = 0.0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.perf_counter(), line))
        self.lines.put((time.perf_counter(), None))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            del self.stderr[:-40]

    def __iter__(self) -> Iterator[tuple[float, str]]:
        """``(seconds since start, line)`` as they arrive; stops at exit, timeout or the memory cap."""
        while True:
            try:
                at, line = self.lines.get(timeout=0.25)
            except queue.Empty:
                self.peak_rss = max(self.peak_rss, rss_mb(self.proc.pid))
                elapsed = time.perf_counter() - self.t0
                if elapsed > self.timeout:
                    self.kill(f"did not finish in {self.timeout:.0f} s")
                elif self.peak_rss > self.max_rss_mb:
                    self.kill(f"grew past {self.max_rss_mb:.0f} MB RSS")
                continue
            if line is None:
                self.proc.wait()
                return
            yield at - self.t0, line

    def kill(self, why: str) -> None:
        """Stop the child (and its process group's OPA, which exits with its parent's pipe)."""
        self.killed = why
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def error(self) -> str | None:
        """Why the child failed, or None."""
        if self.killed:
            return self.killed
        if self.proc.returncode:
            tail = "".join(self.stderr).strip().splitlines()[-3:]
            return f"exit {self.proc.returncode}: {' | '.join(tail)}"
        return None


def measure_size(size: int, opts: dict[str, Any], root: Path, fmt: str, log: Callable[[str], None]) -> dict[str, Any]:
    """Every measurement at one size (start probes, then the worker)."""
    out: dict[str, Any] = {"size": size, "format": fmt}
    data_dir, gen_s = prepare(size, opts["seed"], root, fmt)
    out["generate_s"] = gen_s
    out["inventory_mb"] = sum(f.stat().st_size for f in data_dir.iterdir() if f.is_file()) / 1e6
    log(f"  {size}: inventory {out['inventory_mb']:.1f} MB ({fmt}); worker ({opts['rounds']} interleaved rounds)")
    starts: list[dict[str, Any]] = []
    child = _Child(["--worker", str(data_dir), "--size", str(size), "--options", json.dumps(opts)],
                   opts["size_timeout"], opts["max_rss_mb"])
    for at, line in child:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row["key"] == "first_decision":
            starts.append({**row["value"], "start_to_first_decision_s": at})
        elif row["key"] in ("note", "change_note"):
            out.setdefault("notes", []).append(row["value"])
        else:
            out[row["key"]] = row["value"]
    out["worker_peak_rss_mb"] = child.peak_rss
    if child.error():
        out["error"] = child.error()
    # More fresh processes for the start median, unless one start already took a minute (evidence enough).
    while starts and len(starts) < opts["start_rounds"] and starts[0]["start_to_first_decision_s"] <= 60:
        log(f"  {size}: start probe {len(starts) + 1} of {opts['start_rounds']}")
        probe_child = _Child(["--probe", str(data_dir), "--size", str(size), "--seed", str(opts["seed"])],
                             opts["size_timeout"], opts["max_rss_mb"])
        for at, line in probe_child:
            starts.append({**json.loads(line), "start_to_first_decision_s": at})
        if probe_child.error():
            out["start_error"] = probe_child.error()
            break
    failed = [s["fail_closed"] for s in starts if s.get("fail_closed")]
    if failed:
        out["start_error"] = f"the first decision failed closed: {failed[0]}"
    if starts:
        for key in ("start_to_first_decision_s", "import_s", "init_s", "first_decide_s", "rss_mb"):
            out[f"start_{key}" if not key.startswith("start") else key] = statistics.median(s[key] for s in starts)
        out["start_rounds"] = len(starts)
        out["start_tier"] = starts[0]["tier"]
    return out


def _options(mode: Any) -> dict[str, Any]:
    if mode in (None, "full"):
        return dict(FULL)
    if mode == "smoke":
        return dict(SMOKE)
    if isinstance(mode, Mapping):
        base = dict(SMOKE if mode.get("smoke") else FULL)
        base.update({k: v for k, v in mode.items() if k != "smoke" and v is not None})
        return base
    raise ValueError(f"unknown mode {mode!r}: smoke, full or a dict of options")


def run(mode: Any = "full", *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the scaling benchmark; ``mode`` is "smoke", "full" or a dict overriding :data:`FULL`."""
    opts = _options(mode)
    say = log or (lambda _m: None)
    sizes = [int(s) for s in opts["sizes"]]
    big_format = "jsonl" if jsonl_supported() else "yaml"
    say(f"scaling: sizes {sizes}; inventories above 10,000 identities as {big_format}")
    results: dict[str, Any] = {"title": "Scaling with inventory size", "sizes": {}, "notes": []}
    if big_format == "yaml":
        results["notes"].append("this engine reads no JSON Lines inventory: every size is loaded from YAML")
    with contextlib.ExitStack() as stack:
        root = Path(opts["workdir"]) if opts["workdir"] else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scaling-"))
        )
        root.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            fmt = "yaml" if size <= 10_000 else big_format
            results["sizes"][str(size)] = measure_size(size, {**opts, "workdir": None}, root, fmt, say)
    results["options"] = {k: v for k, v in opts.items() if k != "workdir"}
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line: the benchmark, or (internally) one probe or worker process."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", help="comma-separated identity counts (default 100,10000,100000,1000000)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and rounds (seconds)")
    ap.add_argument("--workdir", help="keep generated inventories here and reuse them")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--options", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.probe:
        probe_main(args.probe, args.size, args.seed)
        return 0
    if args.worker:
        worker_main(args.worker, args.size, json.loads(args.options))
        return 0
    mode: dict[str, Any] = {"smoke": args.smoke, "workdir": args.workdir}
    if args.sizes:
        mode["sizes"] = [int(s) for s in args.sizes.split(",")]
    result = run(mode, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Warrant benchmarks (a plain script, not a timed test).

    python -m bench.bench_warrants [--n 20000]

Measures, on one core and in one run:

* ``ed25519_verify_floor``: a bare ``cryptography`` Ed25519 verify of a
  warrant-sized message, the floor no warrant verify can beat;
* ``warrant_issue``: :meth:`WarrantIssuer.issue` (claims, PyJWT encode, sign);
* ``warrant_verify``: :meth:`WarrantVerifier.verify` (signature, claims,
  digest; no ``jti`` consumption) with a JWKS key set and with a live keyring;
* ``pyjwt_decode_reference``: ``jwt.decode`` with a cached ``PyJWT`` instance
  and time checks disabled, the alternative the module docstring of
  :mod:`hitlgate.engine.keys.warrants` compares against.

Each benchmark is a function ``bench_<name>(ctx) -> Callable[[], object]``
returning the operation to time; add one to :data:`BENCHES` (other modules
can import :func:`measure`, :func:`make_context` and :func:`report`). The
target is ``warrant_verify`` at least 0.7x the floor's rate.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

from hitlgate.engine.decide.proposal import action_digest
from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.engine.keys.warrants import WarrantIssuer, WarrantVerifier

ISSUER = "hitlgate"
AUDIENCE = "hitlgate-executor"


@dataclass(frozen=True)
class Result:
    """Timing of one benchmark."""

    name: str
    ops_per_s: float
    p50_us: float
    p99_us: float


@dataclass
class Context:
    """Shared fixtures: a keyring, an issuer, a verifier and a sample warrant."""

    keyring: EngineKeyring
    issuer: WarrantIssuer
    verifier_jwks: WarrantVerifier
    verifier_keyring: WarrantVerifier
    digest: str
    token: str
    now: datetime
    approvals: list[dict[str, Any]]


def make_context(key_dir: Path) -> Context:
    """Build the fixtures once, outside the timed loops."""
    keyring = EngineKeyring.load_or_create(key_dir)
    issuer = WarrantIssuer(keyring, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=300)
    action = {"type": "rotate_api_key", "target": "svc-payments-api-key", "parameters": {"reason": "leak"}}
    digest = action_digest(action)
    now = datetime.now(UTC).replace(microsecond=0)
    approvals = [
        {"approver": "alice", "slot": {"roles": ["secops-lead"]}, "at": "2025-01-31T12:00:00Z", "signature": "A" * 86},
        {"approver": "bob", "slot": {"teams": ["team-payments"]}, "at": "2025-01-31T12:01:00Z", "signature": "B" * 86},
    ]
    token = issuer.issue(
        request_id="req-0001",
        action_digest=digest,
        tier="dual_approval",
        approvals=approvals,
        policy_revision="sha256:" + "c" * 64,
        now=now,
    ).token
    jwks_keys = EngineKeyring.from_jwks(keyring.jwks())
    return Context(
        keyring=keyring,
        issuer=issuer,
        verifier_jwks=WarrantVerifier(jwks_keys, issuer=ISSUER, audience=AUDIENCE),
        verifier_keyring=WarrantVerifier(keyring, issuer=ISSUER, audience=AUDIENCE),
        digest=digest,
        token=token,
        now=now,
        approvals=approvals,
    )


def bench_ed25519_verify_floor(ctx: Context) -> Callable[[], object]:
    """Bare Ed25519 verify over the same signing input and signature as the warrant."""
    kid, private_key = ctx.keyring.signing_key()
    public_key = private_key.public_key()
    message = ctx.token.rsplit(".", 1)[0].encode("ascii")
    signature = private_key.sign(message)
    return lambda: public_key.verify(signature, message)


def bench_warrant_issue(ctx: Context) -> Callable[[], object]:
    """Issue a dual-approval warrant."""
    return lambda: ctx.issuer.issue(
        request_id="req-0001",
        action_digest=ctx.digest,
        tier="dual_approval",
        approvals=ctx.approvals,
        policy_revision="sha256:" + "c" * 64,
        now=ctx.now,
    )


def bench_warrant_verify(ctx: Context) -> Callable[[], object]:
    """Verify with a fixed key set (what an executor holding the JWKS does)."""
    return lambda: ctx.verifier_jwks.verify(ctx.token, action_digest=ctx.digest, now=ctx.now)


def bench_warrant_verify_keyring(ctx: Context) -> Callable[[], object]:
    """Verify against the live keyring (adds one stat() to notice rotations)."""
    return lambda: ctx.verifier_keyring.verify(ctx.token, action_digest=ctx.digest, now=ctx.now)


def bench_pyjwt_decode_reference(ctx: Context) -> Callable[[], object]:
    """``jwt.decode`` with a cached instance, time checks off (not what we ship)."""
    decoder = jwt.PyJWT()
    public_key = EngineKeyring.from_jwks(ctx.keyring.jwks())[ctx.keyring.current_kid]
    options: Any = {
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "require": ["exp", "iat", "nbf", "jti", "aud", "iss", "sub"],
    }
    return lambda: decoder.decode(
        ctx.token, public_key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER, options=options
    )


BENCHES: list[Callable[[Context], Callable[[], object]]] = [
    bench_ed25519_verify_floor,
    bench_warrant_issue,
    bench_warrant_verify,
    bench_warrant_verify_keyring,
    bench_pyjwt_decode_reference,
]


def measure(name: str, op: Callable[[], object], n: int, warmup: int = 500, rounds: int = 5) -> Result:
    """Run ``op`` ``n`` times in ``rounds`` rounds; report the best round's rate.

    The best round (as ``timeit`` recommends) is the least disturbed by other
    work on a shared machine; p50/p99 come from every per-call sample.
    """
    for _ in range(warmup):
        op()
    clock = time.perf_counter_ns
    per_round = max(1, n // rounds)
    samples: list[int] = []
    best = 0.0
    for _ in range(rounds):
        start = clock()
        for _ in range(per_round):
            t0 = clock()
            op()
            samples.append(clock() - t0)
        best = max(best, per_round / ((clock() - start) / 1e9))
    samples.sort()
    return Result(
        name=name,
        ops_per_s=best,
        p50_us=statistics.median(samples) / 1000,
        p99_us=samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000,
    )


def report(results: list[Result]) -> None:
    """Print a table, and verify/floor ratios when both were measured."""
    print(f"{'benchmark':32} {'ops/s':>10} {'p50 µs':>9} {'p99 µs':>9}")
    for r in results:
        print(f"{r.name:32} {r.ops_per_s:10.0f} {r.p50_us:9.1f} {r.p99_us:9.1f}")
    by_name = {r.name: r for r in results}
    floor = by_name.get("ed25519_verify_floor")
    if floor is None:
        return
    for name in ("warrant_verify", "warrant_verify_keyring", "pyjwt_decode_reference"):
        measured = by_name.get(name)
        if measured is not None:
            ratio = measured.ops_per_s / floor.ops_per_s
            print(f"ratio {name}/floor: {ratio:.2f} (target >= 0.70 for warrant_verify)")


def results(n: int) -> list[Result]:
    """Run every benchmark in :data:`BENCHES` with ``n`` timed iterations each."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(Path(tmp) / "keys")
        return [measure(fn.__name__.removeprefix("bench_"), fn(ctx), n, warmup=min(500, n)) for fn in BENCHES]


def run(mode: Any = "full", *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """For ``python -m bench``: "smoke" (a few hundred iterations) or "full"; returns the numbers."""
    n = 500 if mode == "smoke" else 20000
    if log:
        log(f"warrants: {n} iterations per benchmark")
    out: dict[str, Any] = {}
    for r in results(n):
        out[f"{r.name}_ops_per_s"] = r.ops_per_s
        out[f"{r.name}_p50_us"] = r.p50_us
        out[f"{r.name}_p99_us"] = r.p99_us
    return out


def main() -> None:
    """Run every benchmark in :data:`BENCHES` once."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="timed iterations per benchmark")
    args = parser.parse_args()
    report(results(args.n))


if __name__ == "__main__":
    main()

"""Differential conformance at scale: regopy and a real OPA decide identically on 10,000 identities.

The corpus and the sweeps of test_differential.py run on inventories of a
few dozen records. This suite decides a deterministic sample of proposals
(every action type, identities, workloads, protected and unknown targets,
every requester kind) against a generated inventory of 10,000 identities
(``bench/gen_inventory.py``: 3,000 workloads, 502 teams, 150 partners,
about a thousand approvers) on both engines, through each backend's real
path, and compares the full decision documents. The sample must reach every
tier and every built-in risk factor, so it cannot pass by deciding the
same thing three hundred times.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.gen_inventory import ACTIONS, REQUESTER_KINDS, Spec, generate, proposals, write_inventory
from hitlgate.engine import TIERS, BackendConfig, Config, Decider
from hitlgate.engine._resources import bundled_policy_dir
from hitlgate.engine.decide._bundle import write_bundle
from hitlgate.engine.decide.policy import PolicyModules
from tests.opa.conftest import OpaServer

SIZE = 10_000
SEED = 4242
SAMPLE = 300
BUILTIN_FACTORS = {
    "protected_target", "action_not_applicable", "unknown_target", "production_credential", "production_workload",
    "customer_facing", "federated_partner", "no_fallback", "high_privilege", "irreversible",
}


@pytest.fixture(scope="module")
def at_scale(tmp_path_factory: pytest.TempPathFactory, opa_bin: Path) -> Iterator[tuple[Decider, Decider]]:
    """(embedded, OPA backend) deciders on the same generated 10,000-identity inventory."""
    root = tmp_path_factory.mktemp("at-scale")
    data_dir = root / "data"
    write_inventory(Spec(SIZE, SEED), data_dir, "yaml")
    (root / "served").mkdir()
    # The bundle carries the modules only: both engines take the facts from the same local index.
    bundle = write_bundle(PolicyModules.load(bundled_policy_dir()), root / "served" / "hitlgate.tar.gz")
    server = OpaServer(opa_bin, bundle, root).start(timeout=120)
    embedded = Decider.from_config(Config(policy_dir=bundled_policy_dir(), data_paths=(data_dir,)))
    via_opa = Decider.from_config(Config(
        policy_dir=bundled_policy_dir(), data_paths=(data_dir,),
        backend=BackendConfig(kind="opa", url=server.url, timeout_ms=10_000),
    ))
    yield embedded, via_opa
    embedded.close()
    via_opa.close()
    server.stop()


def _sample() -> list[dict[str, Any]]:
    return proposals(Spec(SIZE, SEED), SAMPLE, seed=11)


def test_sample_covers_every_action_requester_and_kind_of_target() -> None:
    doc = generate(SIZE, SEED)
    sample = _sample()
    assert {p["action"]["type"] for p in sample} == set(ACTIONS)
    assert {p["requester"]["kind"] for p in sample} == set(REQUESTER_KINDS)
    targets = Counter(
        "protected" if p["action"]["target"] in doc["protected"]
        else "identity" if p["action"]["target"] in doc["identities"]
        else "workload" if p["action"]["target"] in doc["workloads"]
        else "unknown"
        for p in sample
    )
    assert set(targets) == {"protected", "identity", "workload", "unknown"}, targets
    assert min(targets.values()) >= 5, targets


def test_regopy_and_opa_decide_identically_at_10000_identities(at_scale: tuple[Decider, Decider]) -> None:
    embedded, via_opa = at_scale
    tiers: Counter[str] = Counter()
    factors: Counter[str] = Counter()
    for proposal in _sample():
        want = embedded.decide(proposal).to_dict()
        got = via_opa.decide(proposal).to_dict()
        # A fail-closed deny on both sides would hide a broken pack (or an OPA that cannot answer).
        assert "fail_closed" not in want, want["reasons"]
        assert "fail_closed" not in got, got["reasons"]
        assert got == want, f"regopy and OPA disagree on {json.dumps(proposal['action'])}:\n{want}\n{got}"
        tiers[want["tier"]] += 1
        factors.update(want["risk_factors"])
    assert set(tiers) == set(TIERS), tiers
    assert set(factors) == BUILTIN_FACTORS, factors

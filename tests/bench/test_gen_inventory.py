"""The benchmark inventory generator: valid, deterministic, in proportion, and every tier reachable.

The scaling benchmark and the at-scale differential suite trust these
inventories to be what a real organisation's would look like; a generator
that drifted out of the schema, or stopped producing some tier, would make
their numbers (or their agreement) meaningless.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

from bench.gen_inventory import (
    ACTIONS,
    Spec,
    approver_public_key,
    generate,
    proposals,
    write_inventory,
    write_jsonl,
    write_jsonl_shards,
)
from hitlgate.engine import Config, Decider, load_inventory
from hitlgate.engine.decide.inventory import decode_public_key
from hitlgate.engine.decide.proposal import Proposal
from hitlgate.engine.keys._demokeys import is_demo_key


def test_yaml_loads_through_the_engine_and_equals_the_in_memory_document(tmp_path: Path) -> None:
    write_inventory(Spec(500, seed=3), tmp_path / "data", "yaml")
    loaded = load_inventory([tmp_path / "data"])
    assert loaded.document == generate(500, seed=3)


def test_same_seed_same_bytes_other_seed_other_inventory(tmp_path: Path) -> None:
    a = write_inventory(Spec(300, seed=5), tmp_path / "a", "jsonl").read_bytes()
    b = write_inventory(Spec(300, seed=5), tmp_path / "b", "jsonl").read_bytes()
    c = write_inventory(Spec(300, seed=6), tmp_path / "c", "jsonl").read_bytes()
    assert a == b
    assert a != c


def test_jsonl_lines_follow_contract_3_and_hold_the_same_records() -> None:
    buf = io.StringIO()
    write_jsonl(Spec(200), buf)
    doc = generate(200)
    rebuilt: dict[str, dict[str, object]] = {s: {} for s in ("teams", "partners", "workloads", "identities",
                                                              "approvers")}
    protected = []
    for line in buf.getvalue().splitlines():
        row = json.loads(line)
        if row["section"] == "protected":
            assert set(row) == {"section", "id"}
            protected.append(row["id"])
        else:
            assert set(row) == {"section", "id", "record"}
            rebuilt[row["section"]][row["id"]] = row["record"]
    assert {**rebuilt, "protected": protected} == doc


def test_proportions_per_100_identities() -> None:
    doc = generate(10_000)
    assert len(doc["identities"]) == 10_000
    assert len(doc["workloads"]) == 3_000
    assert len(doc["teams"]) == 502
    assert len(doc["partners"]) == 150
    assert 2 * 500 <= len(doc["approvers"]) <= 3 * 500
    assert 25 <= len(doc["protected"]) <= 100
    kinds = Counter(rec["kind"] for rec in doc["identities"].values())
    assert set(kinds) == {"api_key", "service_account", "token", "certificate", "secret", "federated_credential"}
    assert {r["environment"] for r in doc["identities"].values()} == {"production", "staging", "development"}
    assert {r["privilege"] for r in doc["identities"].values()} == {"low", "medium", "high", "admin"}


def test_approver_keys_are_real_distinct_and_not_demo_keys() -> None:
    doc = generate(100, seed=9)
    keys = [rec["public_key"] for rec in doc["approvers"].values()]
    assert len(set(keys)) == len(keys)
    for name, rec in doc["approvers"].items():
        assert rec["public_key"] == approver_public_key(9, name)
        assert not is_demo_key(decode_public_key(rec["public_key"]), (name,))
    roles = {r for rec in doc["approvers"].values() for r in rec["roles"]}
    assert {"security", "partner_management"} <= roles


def test_proposals_are_valid_cover_every_action_and_reach_every_tier(tmp_path: Path) -> None:
    spec = Spec(300, seed=2)
    write_inventory(spec, tmp_path / "data", "yaml")
    props = proposals(spec, 300)
    assert proposals(spec, 300) == props
    assert {p["action"]["type"] for p in props} == set(ACTIONS)
    doc = generate(300, seed=2)
    targets = Counter(
        "identity" if p["action"]["target"] in doc["identities"]
        else "workload" if p["action"]["target"] in doc["workloads"]
        else "unknown"
        for p in props
    )
    assert min(targets.values()) >= 5, targets
    assert any(p["action"]["target"] in doc["protected"] for p in props)
    decider = Decider.from_config(Config(data_paths=(tmp_path / "data",)))
    tiers = Counter(decider.decide(Proposal.from_dict(p)).tier for p in props)
    assert set(tiers) == {"auto_allow", "single_approval", "dual_approval", "deny"}, tiers


def test_jsonl_shards_load_through_the_engine_as_one_inventory(tmp_path: Path) -> None:
    paths = write_jsonl_shards(Spec(400, seed=8), tmp_path / "data", lines_per_file=150)
    assert len(paths) >= 4
    assert all(len(p.read_text().splitlines()) <= 150 for p in paths)
    assert load_inventory([tmp_path / "data"]).document == generate(400, seed=8)

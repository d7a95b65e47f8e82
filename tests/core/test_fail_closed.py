"""Errors, undefined results and broken policy output never allow: they deny."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine import Config, Decider
from hitlgate.engine.decide._regopy import RegopyBackend
from hitlgate.errors import BackendUnavailable
from tests.conftest import make_proposal


def _touch_later(path: Path, text: str) -> None:
    # mtime granularity on some filesystems is coarse; make the change visible.
    time.sleep(0.01)
    path.write_text(text)


def test_policy_compile_error_denies(pack_config: Config, pack_copy: Path) -> None:
    (pack_copy / "broken.rego").write_text("package hitlgate\n\nthis is not rego {{{\n")
    decision = Decider.from_config(pack_config).decide(make_proposal("invalidate_tokens", "staging-deploy-token"))
    assert decision.tier == "deny"
    assert decision.risk_factors == ("evaluation_error",)
    assert "policy does not compile" in decision.reasons[0]
    assert decision.quorum.required == 0


def test_undefined_decision_denies(pack_config: Config, pack_copy: Path) -> None:
    # A pack whose decision rule is undefined for every input.
    (pack_copy / "decision.rego").write_text("package hitlgate\n\ndecision := {} if { false }\n")
    decision = Decider.from_config(pack_config).decide(make_proposal("invalidate_tokens", "staging-deploy-token"))
    assert decision.tier == "deny"
    assert "undefined" in decision.reasons[0]


def test_decision_breaking_the_contract_denies(pack_config: Config, pack_copy: Path) -> None:
    (pack_copy / "decision.rego").write_text(
        'package hitlgate\n\ndecision := {"tier": "auto_allow", "risk_factors": [], "reasons": ["yolo"]}\n'
    )
    decision = Decider.from_config(pack_config).decide(make_proposal("invalidate_tokens", "staging-deploy-token"))
    assert decision.tier == "deny"
    assert "invalid decision document" in decision.reasons[0]


def test_approval_tier_without_slots_denies(pack_config: Config, pack_copy: Path) -> None:
    # A quorum anyone could fill is no quorum: fail closed rather than accept it.
    (pack_copy / "decision.rego").write_text(
        "package hitlgate\n\ndecision := {\n"
        '  "tier": "single_approval", "risk_factors": [], "reasons": ["r"],\n'
        '  "quorum": {"required": 1, "slots": []}, "ttl_seconds": 60, "controls": [],\n'
        '  "blast_radius": {"workloads": [], "partners": []},\n}\n'
    )
    decision = Decider.from_config(pack_config).decide(make_proposal())
    assert decision.tier == "deny"
    assert "names no quorum slot" in decision.reasons[0]


def test_unknown_target_is_never_auto_allowed(example_decider: Decider) -> None:
    for action in ("notify_owner", "invalidate_tokens", "rotate_api_key", "isolate_workload"):
        decision = example_decider.decide(make_proposal(action, "not-in-inventory-42"))
        assert decision.tier == "dual_approval"
        assert "unknown_target" in decision.risk_factors


def test_recompiles_when_policy_changes_and_recovers(pack_config: Config, pack_copy: Path) -> None:
    decider = Decider.from_config(pack_config)
    low = make_proposal("invalidate_tokens", "staging-deploy-token")
    assert decider.decide(low).tier == "auto_allow"
    original = (pack_copy / "decision.rego").read_text()
    _touch_later(pack_copy / "decision.rego", original + "\nthis does not parse\n")
    broken = decider.decide(low)
    assert broken.tier == "deny"
    _touch_later(pack_copy / "decision.rego", original)
    assert decider.decide(low).tier == "auto_allow"


def test_recompiles_when_inventory_changes(pack_config: Config, pack_copy: Path) -> None:
    decider = Decider.from_config(pack_config)
    p = make_proposal("invalidate_tokens", "staging-deploy-token")
    before = decider.decide(p)
    assert before.tier == "auto_allow"
    inv = pack_copy / "data" / "inventory.yaml"
    text = inv.read_text().replace(
        "  staging-deploy-token:\n    kind: token\n    environment: staging",
        "  staging-deploy-token:\n    kind: token\n    environment: production",
    )
    _touch_later(inv, text)
    after = decider.decide(p)
    assert after.tier == "single_approval"
    assert after.policy_revision != before.policy_revision


def test_broken_inventory_denies(pack_config: Config, pack_copy: Path) -> None:
    (pack_copy / "data" / "inventory.yaml").write_text("identities: [not, a, mapping]\n")
    decision = Decider.from_config(pack_config).decide(make_proposal("invalidate_tokens", "staging-deploy-token"))
    assert decision.tier == "deny"
    assert "invalid inventory" in decision.reasons[0]


class _ExplodingBackend:
    """A fake implementing the PolicyBackend protocol whose engine fails."""

    name = "fake"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def evaluate(self, input_document: Mapping[str, Any]) -> tuple[Any, str]:
        raise self.exc

    @property
    def expected_revision(self) -> str:
        return "sha256:" + "1" * 64

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "exc",
    [BackendUnavailable("timed out after 500 ms"), RuntimeError("segfault-ish"), KeyError("expressions")],
    ids=["backend-unavailable", "runtime-error", "key-error"],
)
def test_backend_errors_deny(exc: Exception) -> None:
    decision = Decider(_ExplodingBackend(exc)).decide(make_proposal("invalidate_tokens", "staging-deploy-token"))
    assert decision.tier == "deny"
    assert decision.reasons[0].startswith("fail closed: fake backend:")


def test_embedded_backend_reports_revision_of_what_it_evaluated(pack_config: Config) -> None:
    backend = RegopyBackend(pack_config.policy_dir, list(pack_config.data_paths))
    out, revision = backend.evaluate(make_proposal())
    assert out["tier"] == "dual_approval"
    assert revision == backend.expected_revision

"""Deciding with the inventory in the database (``inventory: {source: database}``).

A change committed by another writer (a CMDB sync, ``hitlgate inventory
put``) must reach the next decision within a second, without recompiling
the policy, and the decision must record the new inventory revision. Runs on
SQLite and the throwaway PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hitlgate.engine import Config, Decider
from hitlgate.engine._resources import bundled_data_dir
from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.decide.decision import Decision
from hitlgate.engine.decide.inventory_db import InventoryDB
from hitlgate.errors import ApprovalError
from tests.workflow._helpers import FakeClock, proposal, signed


@pytest.fixture
def writer(db_url: str) -> Iterator[InventoryDB]:
    """A separate writer on the database, loaded with the example inventory."""
    db = InventoryDB.open(db_url)
    db.import_files([bundled_data_dir()])
    yield db
    db.close()


@pytest.fixture
def config(db_url: str, tmp_path: Path, writer: InventoryDB) -> Config:
    return Config(state_url=db_url, key_dir=tmp_path / "keys", inventory_source="database")


@pytest.fixture
def decider(config: Config) -> Iterator[Decider]:
    d = Decider.from_config(config)
    yield d
    d.close()


def _until(decide: Callable[[], Decision], done: Callable[[Decision], bool]) -> tuple[Decision, float]:
    start = time.monotonic()
    while True:
        decision = decide()
        elapsed = time.monotonic() - start
        if done(decision) or elapsed > 3:
            return decision, elapsed
        time.sleep(0.02)


def test_import_then_decide_as_with_the_files(decider: Decider, bundled_decider: Decider) -> None:
    for action, target in (
        ("rotate_api_key", "dev-analytics-key"),
        ("suspend_service_account", "svc-ci-runner"),
        ("disable_federated_credential", "fed-acme-sso"),
        ("revoke_secret", "no-such-target"),
    ):
        from_db = decider.decide(proposal(action, target))
        from_files = bundled_decider.decide(proposal(action, target))
        assert from_db.fail_closed is None, from_db.reasons
        assert (from_db.tier, from_db.risk_factors, from_db.quorum) == (
            from_files.tier, from_files.risk_factors, from_files.quorum
        ), (action, target)


def test_a_put_reaches_the_next_decision_within_a_second_without_recompiling(
    decider: Decider, writer: InventoryDB
) -> None:
    backend = decider.backend
    before = decider.decide(proposal("rotate_api_key", "dev-analytics-key"))
    assert before.tier == "auto_allow"
    modules = backend.modules  # type: ignore[attr-defined]
    bundle = backend._local.compiled.bundle  # type: ignore[attr-defined]

    writer.put("protected", "dev-analytics-key", True)
    after, elapsed = _until(
        lambda: decider.decide(proposal("rotate_api_key", "dev-analytics-key")), lambda d: d.tier == "deny"
    )
    assert after.tier == "deny" and "protected_target" in after.risk_factors
    assert elapsed < 1.0, f"the change took {elapsed:.2f} s to reach a decision"
    assert after.policy_revision != before.policy_revision
    # Neither the modules nor this thread's compiled bundle were rebuilt.
    assert backend.modules is modules  # type: ignore[attr-defined]
    assert backend._local.compiled.bundle is bundle  # type: ignore[attr-defined]


def test_a_writer_edit_changes_the_revision_recorded_with_the_request(
    config: Config, decider: Decider, writer: InventoryDB, clock: FakeClock
) -> None:
    engine = Engine(config, decider, clock=clock)
    try:
        first = engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
        rec, _ = writer.get("identities", "dev-analytics-key")
        writer.put("identities", "dev-analytics-key", {**rec, "description": "edited by the CMDB sync"})
        time.sleep(0.6)
        second = engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
        assert second.policy_revision != first.policy_revision
        assert second.tier == first.tier == "auto_allow"
    finally:
        engine.close()


def test_an_approver_deleted_from_the_database_can_no_longer_approve(
    config: Config, decider: Decider, writer: InventoryDB, clock: FakeClock
) -> None:
    engine = Engine(config, decider, clock=clock, demo=True)
    try:
        req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
        assert req.status == "pending"
        writer.delete("approvers", "carol")
        time.sleep(0.6)
        with pytest.raises(ApprovalError, match="'carol' is not a registered approver"):
            engine.approve(signed(req, "carol"))
    finally:
        engine.close()

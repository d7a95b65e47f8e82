"""Faults while a serving worker looks at its files only every ``server.file_check_seconds``.

Library and CLI use (interval 0, the default) look on every decision.
With an interval, a serving worker may decide on the old files for at most
that long, and then:

* the policy and the inventory edited together are seen together: before
  the fix each was looked at again one interval after *its own* last look,
  so once the console had read the approvers (the inventory) part of an
  interval after a decision had read both, the next decision saw the new
  policy with the old inventory, a pair nobody wrote;
* a broken module, a deleted module and an inventory file swapped by a
  symbolic link are seen at the next interval and fail closed or reload
  whole, never half.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hitlgate.engine.config import Config
from hitlgate.engine.decide.decider import Decider
from hitlgate.engine.decide.policy import set_file_check_interval
from tests.workflow._helpers import proposal

INTERVAL = 1.0


@pytest.fixture
def interval() -> Iterator[Callable[[float], None]]:
    """Set the process-wide interval; put the library default (0: every call) back afterwards."""
    yield set_file_check_interval
    set_file_check_interval(0)


def _decider(pack: Path) -> Decider:
    return Decider.from_config(Config(policy_dir=pack, data_paths=(pack / "data",), scenario_dir=pack / "scenarios"))


def _revision(decider: Decider) -> str:
    return str(decider.decide(proposal()).policy_revision)


def _at_phase(phase: float) -> None:
    """Sleep until ``phase`` seconds into an interval slot (the next one if it has passed)."""
    now = time.monotonic()
    wait = (phase - now % INTERVAL) % INTERVAL
    time.sleep(wait)


def _in_next_slot(phase: float) -> None:
    """Sleep until ``phase`` seconds into the slot after the current one, never the current one.

    After an edit: a starved process can reach the edit just after a slot
    began (past the decider's look in that slot, before ``phase``), and
    waiting for ``phase`` of that same slot would expect the edit seen
    before the decider's next look.
    """
    now = time.monotonic()
    time.sleep(INTERVAL - now % INTERVAL + phase)


def _edit_both(pack: Path) -> None:
    module = pack / "decision.rego"
    module.write_text(module.read_text() + "\n# edited together with the inventory\n")
    inventory = pack / "data" / "inventory.yaml"
    text = inventory.read_text()
    assert "protected:\n  - root-ca-key\n" in text
    inventory.write_text(text.replace("protected:\n  - root-ca-key\n", "protected:\n  - svc-other\n  - root-ca-key\n"))


def test_library_default_sees_every_edit_at_once(pack_copy: Path) -> None:
    decider = _decider(pack_copy)
    before = _revision(decider)
    _edit_both(pack_copy)
    after = _revision(decider)
    assert after != before and after == _revision(_decider(pack_copy))


def test_policy_and_inventory_edited_together_are_never_decided_half(
        pack_copy: Path, interval: Callable[[float], None]) -> None:
    interval(INTERVAL)
    decider = _decider(pack_copy)
    _at_phase(0.05)
    old = _revision(decider)  # Both looked at early in a slot.
    _at_phase(0.5)
    decider.backend.facts.current()  # type: ignore[attr-defined] # The console reads the approvers mid-slot.
    _edit_both(pack_copy)
    assert _revision(decider) == old  # Within the interval: the old pair.
    _at_phase(0.1)  # Early in the next slot.
    seen = _revision(decider)
    set_file_check_interval(0)
    new = _revision(_decider(pack_copy))
    assert new != old
    assert seen == new, "a decision saw the new policy with the old inventory"


def test_broken_deleted_or_swapped_files_fail_closed_at_the_next_slot(
        pack_copy: Path, interval: Callable[[float], None]) -> None:
    interval(INTERVAL)
    decider = _decider(pack_copy)
    assert decider.decide(proposal()).fail_closed is None
    module = pack_copy / "decision.rego"
    good = module.read_text()
    _at_phase(0.1)
    decider.decide(proposal())
    module.write_text(good.replace("package ", "packge ", 1))  # Broken, written within the slot.
    _in_next_slot(0.05)
    broken = decider.decide(proposal())
    assert broken.fail_closed is not None and broken.tier == "deny", broken.to_dict()
    module.write_text(good)
    assert decider.decide(proposal()).fail_closed is None  # A broken pack is looked at on every call.
    module.unlink()
    _in_next_slot(0.05)
    gone = decider.decide(proposal())
    assert gone.fail_closed is not None and gone.tier == "deny", gone.to_dict()
    module.write_text(good)
    assert decider.decide(proposal()).fail_closed is None
    # The inventory replaced by a symbolic link to an edited copy: reloaded whole.
    inventory = pack_copy / "data" / "inventory.yaml"
    edited = pack_copy.parent / "inventory-v2.yaml"
    edited.write_text(inventory.read_text().replace("protected:\n  - root-ca-key\n",
                                                    "protected:\n  - svc-ci-runner\n  - root-ca-key\n"))
    before = decider.decide(proposal("suspend_service_account", "svc-ci-runner"))
    assert before.tier != "deny"
    inventory.unlink()
    inventory.symlink_to(edited)
    _in_next_slot(0.05)
    after = decider.decide(proposal("suspend_service_account", "svc-ci-runner"))
    assert after.tier == "deny" and after.fail_closed is None, after.to_dict()

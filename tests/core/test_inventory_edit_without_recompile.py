"""An inventory edit reaches the next decision without recompiling the policy; a module edit recompiles.

The embedded backend compiles the Rego modules only; the facts come from an
index of the inventory. Changing an inventory file must rebuild the index
alone (the compiled modules object stays the same one), change the
decision's facts and its ``policy_revision``; a broken inventory must fail
closed as ``policy_broken`` and recover when fixed.
"""

from __future__ import annotations

import os
from pathlib import Path

from hitlgate.engine import Decider, PolicyPack
from hitlgate.engine.decide._regopy import RegopyBackend
from tests.conftest import make_proposal


def _touch_later(path: Path, text: str) -> None:
    # A different size or mtime is how the engine sees an edit; bump the mtime
    # so an edit within the same clock tick is seen too.
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_inventory_edit_rebuilds_facts_not_the_policy(pack_copy: Path) -> None:
    backend = RegopyBackend(pack_copy, [pack_copy / "data"])
    decider = Decider(backend)
    try:
        modules = backend.modules
        first = decider.decide(make_proposal("rotate_api_key", "svc-payments-key"))
        assert first.tier == "dual_approval"

        inv = pack_copy / "data" / "inventory.yaml"
        _touch_later(inv, inv.read_text(encoding="utf-8").replace("protected:\n", "protected:\n  - svc-payments-key\n"))
        second = decider.decide(make_proposal("rotate_api_key", "svc-payments-key"))
        assert second.tier == "deny" and "protected_target" in second.risk_factors
        assert second.policy_revision != first.policy_revision
        assert second.policy_revision == PolicyPack.load(pack_copy, [pack_copy / "data"]).revision
        assert backend.modules is modules, "an inventory edit must not reload or recompile the modules"

        rego = pack_copy / "decision.rego"
        _touch_later(rego, rego.read_text(encoding="utf-8") + "\n# edited\n")
        decider.decide(make_proposal())
        assert backend.modules is not modules
        assert backend.modules.revision != modules.revision
    finally:
        decider.close()


def test_broken_inventory_fails_closed_then_recovers(pack_copy: Path) -> None:
    backend = RegopyBackend(pack_copy, [pack_copy / "data"])
    decider = Decider(backend)
    try:
        inv = pack_copy / "data" / "inventory.yaml"
        good = inv.read_text(encoding="utf-8")
        _touch_later(inv, good + "\nteams: {}\n")  # A duplicate top-level key.
        broken = decider.decide(make_proposal("notify_owner", "svc-payments-key"))
        assert broken.tier == "deny" and broken.fail_closed is not None
        assert broken.fail_closed["code"] == "policy_broken"
        assert "duplicate key" in broken.reasons[0]
        _touch_later(inv, good)
        assert decider.decide(make_proposal("notify_owner", "svc-payments-key")).tier == "auto_allow"
    finally:
        decider.close()


def test_same_size_edit_with_its_mtime_put_back_is_still_seen(pack_copy: Path) -> None:
    # `cp -p`, `rsync -t` and tar restore the mtime; an edit of the same
    # size would then look unchanged by (mtime, size). A production record
    # restored as staging must not keep its old tier in a running process.
    backend = RegopyBackend(pack_copy, [pack_copy / "data"])
    decider = Decider(backend)
    try:
        inv = pack_copy / "data" / "inventory.yaml"
        text = inv.read_text(encoding="utf-8")
        old = "  svc-payments-key:\n"
        block = text[text.index(old):]
        env_line = next(line for line in block.splitlines() if "environment: production" in line)
        edited = text.replace(env_line, env_line.replace("production", "staging   "), 1)
        assert len(edited.encode()) == len(text.encode()) and edited != text
        first = decider.decide(make_proposal("rotate_api_key", "svc-payments-key"))
        st = inv.stat()
        inv.write_text(edited, encoding="utf-8")
        os.utime(inv, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert inv.stat().st_mtime_ns == st.st_mtime_ns and inv.stat().st_size == st.st_size
        second = decider.decide(make_proposal("rotate_api_key", "svc-payments-key"))
        assert second.policy_revision != first.policy_revision
        assert second.policy_revision == PolicyPack.load(pack_copy, [pack_copy / "data"]).revision
    finally:
        decider.close()

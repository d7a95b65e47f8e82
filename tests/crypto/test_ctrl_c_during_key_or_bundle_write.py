"""Fault: Ctrl-C (KeyboardInterrupt) while a key rotation or a policy bundle is being written.

The CLI reports an interrupt as exit 130 (code ``interrupted``); what it
leaves behind must be the state before the command: the old keyring state
whole, no orphaned private key beside it, no stray temporary file beside
the bundle. Before the fix both writers cleaned up only after an OSError.
The interrupt is raised by ``os.replace`` (the standard library), the last
step before the new file would take the old one's place.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hitlgate.engine._resources import bundled_policy_dir
from hitlgate.engine.decide._bundle import write_bundle
from hitlgate.engine.decide.policy import PolicyModules
from hitlgate.engine.keys.keyring import STATE_FILE, EngineKeyring


def _interrupt_replace(monkeypatch: pytest.MonkeyPatch) -> None:
    def replace(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt("ctrl-c in os.replace")

    monkeypatch.setattr(os, "replace", replace)


def test_ctrl_c_during_rotation_leaves_the_old_keyring_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_dir = tmp_path / "keys"
    ring = EngineKeyring.load_or_create(key_dir)
    before = sorted(p.name for p in key_dir.iterdir())
    state = (key_dir / STATE_FILE).read_bytes()
    with monkeypatch.context() as m:
        _interrupt_replace(m)
        with pytest.raises(KeyboardInterrupt, match="ctrl-c in os.replace"):
            ring.rotate()
    assert sorted(p.name for p in key_dir.iterdir()) == before
    assert (key_dir / STATE_FILE).read_bytes() == state
    assert EngineKeyring.load_or_create(key_dir).rotate()  # And the next rotation works.


def test_ctrl_c_during_bundle_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "bundle.tar.gz"
    pack = PolicyModules.load(bundled_policy_dir())
    with monkeypatch.context() as m:
        _interrupt_replace(m)
        with pytest.raises(KeyboardInterrupt, match="ctrl-c in os.replace"):
            write_bundle(pack, out)
    assert list(tmp_path.iterdir()) == []
    assert write_bundle(pack, out) == out and out.stat().st_size > 0

"""The end-to-end demo runs every seed case through the guard, in a temporary directory."""

from __future__ import annotations

from hitlgate.cli._demo import seed_cases
from hitlgate.cli._demo_workflow import demo_approver_key, run_workflow_demo
from hitlgate.engine.inventory import encode_public_key
from hitlgate.engine.keys import public_raw


def test_demo_runs_end_to_end_without_touching_home(tmp_path, monkeypatch, bundled_decider):
    monkeypatch.setenv("HITLGATE_HOME", str(tmp_path / "home"))
    lines: list[str] = []
    assert run_workflow_demo(seed_cases(), echo=lines.append, decider=bundled_decider) == 0
    text = "\n".join(lines)
    assert "audit chain OK" in text and "replay refused" in text
    assert text.count("executor: would run") == sum(len(c) for _t, c in seed_cases())
    assert not (tmp_path / "home").exists()


def test_demo_keys_match_the_example_inventory():
    assert encode_public_key(public_raw(demo_approver_key("alice").public_key())) == (
        "ed25519:c1bpoYKeFU0Tt4ZOh16T2S5gTr_zwlnqpCqx7mhizMM"
    )

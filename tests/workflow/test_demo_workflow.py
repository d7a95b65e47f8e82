"""The end-to-end demo runs every seed case through the guard, in a temporary directory."""

from __future__ import annotations

from hitlgate.cli._demo import seed_cases
from hitlgate.cli._demo_workflow import demo_approver_key, run_workflow_demo
from hitlgate.engine.decide.inventory import encode_public_key
from hitlgate.engine.keys.keyring import public_raw


def test_demo_runs_end_to_end_without_touching_home(tmp_path, monkeypatch, bundled_decider):
    monkeypatch.setenv("HITLGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    lines: list[str] = []
    tally = run_workflow_demo(seed_cases(), echo=lines.append, decider=bundled_decider)
    text = "\n".join(lines)
    cases = sum(len(c) for _t, c in seed_cases())
    assert tally.problems == []
    assert tally.executed == tally.replays_refused == cases
    assert text.count("the executor checks the warrant and runs") == cases
    assert "audit chain OK" in text
    assert not (tmp_path / "home").exists() and not (tmp_path / "user").exists()


def test_demo_keys_match_the_example_inventory():
    assert encode_public_key(public_raw(demo_approver_key("alice").public_key())) == (
        "ed25519:c1bpoYKeFU0Tt4ZOh16T2S5gTr_zwlnqpCqx7mhizMM"
    )

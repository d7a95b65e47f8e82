"""Fault: the exact decision cache answers with an output the policy would not give now.

The embedded backend reuses the output of an input it evaluated before
(:mod:`hitlgate.engine.decide._decision_cache`). It may only do so when the
output cannot differ: same modules, same inventory, same whole input, and
a policy whose result depends on nothing else. Each test here changes one
of these and checks the cache is not consulted or misses.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hitlgate.engine import Config, Decider
from hitlgate.engine._resources import bundled_data_dir
from hitlgate.engine.decide._decision_cache import DecisionCache
from hitlgate.engine.decide._regopy import RegopyBackend
from tests.conftest import make_proposal

TARGET = "dev-analytics-key"


def _backend(config: Config) -> RegopyBackend:
    return RegopyBackend(config.policy_dir, list(config.data_paths))


def _touch_later(path: Path) -> None:
    # A rewrite in the same clock tick as the load would look unchanged to the mtime check.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def test_a_repeated_proposal_is_answered_from_the_cache() -> None:
    backend = _backend(Config())
    first = backend.evaluate(make_proposal("rotate_api_key", TARGET))
    again = backend.evaluate(make_proposal("rotate_api_key", TARGET))
    assert again == first
    assert (backend.decision_cache.hits, backend.decision_cache.misses) == (1, 1)
    # Any other field of the proposal is another input.
    backend.evaluate(make_proposal("rotate_api_key", TARGET, incident="INC-2"))
    assert backend.decision_cache.hits == 1


def test_a_policy_reading_the_clock_is_never_cached(tmp_path: Path) -> None:
    (tmp_path / "clock.rego").write_text('package hitlgate\n\ndecision := {"now": time.now_ns()}\n')
    backend = RegopyBackend(tmp_path, [bundled_data_dir()])
    doc = make_proposal("rotate_api_key", TARGET)
    first, _ = backend.evaluate(doc)
    second, _ = backend.evaluate(doc)
    assert first["now"] != second["now"]
    assert (backend.decision_cache.hits, len(backend.decision_cache)) == (0, 0)


@pytest.mark.parametrize("call", ["rand.intn(\"x\", 1000000)", "uuid.rfc4122(\"x\")", "opa.runtime()"])
def test_other_nondeterministic_builtins_turn_the_cache_off(tmp_path: Path, call: str) -> None:
    (tmp_path / "p.rego").write_text(f'package hitlgate\n\nx := {call}\n\ndecision := {{"ok": true}}\n')
    backend = RegopyBackend(tmp_path, [bundled_data_dir()])
    doc = make_proposal()
    backend.evaluate(doc)
    backend.evaluate(doc)
    assert (backend.decision_cache.hits, len(backend.decision_cache)) == (0, 0)


def test_an_inventory_change_is_never_answered_from_the_cache(pack_config: Config) -> None:
    decider = Decider.from_config(pack_config)
    proposal = make_proposal("rotate_api_key", TARGET)
    assert decider.decide(proposal).tier == "auto_allow"
    assert decider.decide(proposal).tier == "auto_allow"
    inventory = pack_config.policy_dir / "data" / "inventory.yaml"
    text = inventory.read_text()
    before = "  dev-analytics-key:\n    kind: api_key\n    environment: development\n"
    assert before in text
    inventory.write_text(text.replace(before, before.replace("development", "production")))
    _touch_later(inventory)
    decision = decider.decide(proposal)
    assert decision.tier == "single_approval"
    assert "production_credential" in decision.risk_factors


def test_a_policy_change_is_never_answered_from_the_cache(pack_config: Config) -> None:
    decider = Decider.from_config(pack_config)
    proposal = make_proposal("rotate_api_key", TARGET)
    assert decider.decide(proposal).tier == "auto_allow"
    module = pack_config.policy_dir / "always_deny.rego"
    module.write_text("package hitlgate\n\ndeny_row if input.action.type == \"rotate_api_key\"\n")
    decision = decider.decide(proposal)
    assert decision.fail_closed is None, decision.reasons
    assert decision.tier == "deny"


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = DecisionCache(2)
    keys = [DecisionCache.key("m", "i", {"n": n}) for n in range(3)]
    assert all(k is not None for k in keys)
    a, b, c = (k for k in keys if k is not None)
    cache.put(a, {"v": 1})
    cache.put(b, {"v": 2})
    assert cache.get(a) == (True, {"v": 1})  # a is now the most recently used.
    cache.put(c, {"v": 3})
    assert cache.get(b) == (False, None)
    assert cache.get(a) == (True, {"v": 1})
    assert len(cache) == 2


def test_a_cached_output_cannot_be_changed_through_a_caller(tmp_path: Path) -> None:
    backend = _backend(Config())
    doc = make_proposal("rotate_api_key", TARGET)
    first, _ = backend.evaluate(doc)
    first["tier"] = "auto_allow_forged"
    again, _ = backend.evaluate(doc)
    assert again["tier"] == "auto_allow"
    assert backend.decision_cache.hits == 1


def test_decision_cache_0_in_the_config_turns_it_off(tmp_path: Path) -> None:
    # A benchmark that cycles through fixed proposals (or an operator who wants every call evaluated) needs this.
    config_file = tmp_path / "hitlgate.yaml"
    config_file.write_text("backend: {kind: embedded, decision_cache: 0}\n")
    decider = Decider.from_config(Config.from_file(config_file))
    proposal = make_proposal("rotate_api_key", TARGET)
    first = decider.decide(proposal)
    assert decider.decide(proposal) == first
    cache = decider.backend.decision_cache  # type: ignore[attr-defined]
    assert (cache.size, cache.hits, len(cache)) == (0, 0, 0)

"""A loosening on targets missing from the inventory (the highest-risk class) is never silent.

The sweep tried only targets the inventory holds, so a pull request that
auto-allowed every unknown target whose id starts with ``svc-`` passed as
"no decision changed". Now the diff also decides unknown targets: one id in
no inventory section, and ids made from each string literal of either side's
modules (the literal, and the literal with a suffix or prefix), every action
type x requester kind. A test on the target id that such ids cannot exercise
(a regex, a glob, sprintf, indexing) makes the diff incomplete, and so do
literal-derived ids the cap leaves out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hitlgate.engine.decide import _policydiff
from hitlgate.engine.decide._policydiff import UNKNOWN_PREFIX, UNKNOWN_SUFFIX, UNKNOWN_TARGET, unknown_targets
from tests.policyci.conftest import Run, clone, edit, run_check

pytestmark = pytest.mark.opa

UNKNOWN_ROW = 'else := "dual_approval" if unknown_target'


def _pr(base_repo: Path, tmp: Path, test: str, *args: str) -> Run:
    """The bundled project with the unknown-target row skipped for ids that pass ``test``."""
    project = clone(base_repo, tmp / "repo")
    edit(project / "policies" / "decision.rego", UNKNOWN_ROW,
         f'else := "dual_approval" if {{\n\tunknown_target\n\tnot {test}\n}}')
    return run_check(project, "--base", "main", *args)


@pytest.fixture(scope="module")
def svc_prefix(base_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _pr(base_repo, tmp_path_factory.mktemp("svc-prefix"), 'startswith(target_id, "svc-")')


def test_auto_allowing_unknown_svc_targets_fails(svc_prefix: Run) -> None:
    run = svc_prefix
    assert run.exit_code == 1, run.stdout
    assert run.doc["checks_ok"] is True
    (change,) = run.doc["diff"]["changes"]
    assert (change["direction"], change["base_tier"], change["head_tier"]) == ("loosening", "dual_approval",
                                                                               "auto_allow")
    proposals = change["proposals"]
    assert all(p["unknown_target"] and p["target"].startswith("svc-") for p in proposals)
    # Every action type x requester kind of both svc- ids the literal made ("svc-" and "svc-" + suffix).
    assert sorted({p["target"] for p in proposals}) == ["svc-", "svc-" + UNKNOWN_SUFFIX]
    assert len(proposals) == 2 * 9 * 3
    assert run.doc["diff"]["forbidden"] == len(proposals)
    assert run.step("diff-complete")["status"] == "passed"


def test_unknown_targets_are_named_as_such_in_the_report(svc_prefix: Run) -> None:
    run = svc_prefix
    assert "targets unknown to the inventory: dual_approval → auto_allow" in run.outputs["text"]
    assert "on unknown target svc- (requester" in run.outputs["text"]
    assert "on unknown target svc- (requester" in run.outputs["markdown"]
    assert "unknown-target sweep" in run.doc["diff"]["summary"]


def _incomplete(base_repo: Path, tmp_path: Path, condition: str) -> list[str]:
    """The findings of the failed diff-complete step of a pull request adding ``condition`` (the check fails)."""
    run = _pr(base_repo, tmp_path, condition)
    assert run.exit_code == 1, run.stdout
    step = run.step("diff-complete")
    assert step["status"] == "failed"
    return [f["message"] for f in step["findings"]]


def test_regex_on_the_target_id_makes_the_diff_incomplete(base_repo: Path, tmp_path: Path) -> None:
    messages = _incomplete(base_repo, tmp_path, 'regex.match("^svc-[a-z]+$", target_id)')
    assert any("head module decision.rego applies regex.match to the target id" in m for m in messages), messages


def test_an_id_computed_from_literals_makes_the_diff_incomplete(base_repo: Path, tmp_path: Path) -> None:
    # The sweep tries each literal as an id, never "legacy-batch-svc" built from three of them: a
    # comparison of the target id with anything but a literal or the inventory is a gap, not a pass.
    messages = _incomplete(base_repo, tmp_path, 'target_id == concat("-", ["legacy", "batch", "svc"])')
    assert any("head module decision.rego tests the target id (== with a computed value)" in m
               for m in messages), messages
    assert not any("base module" in m for m in messages), messages


@pytest.mark.parametrize(("rule", "why"), [
    ('x := concat("-", ["a", "b"])\nfoo if target_id == x\n', "== with a computed value"),
    ("bar if { some t in data.allow; t == target_id }\n", "== with a computed value"),
    ("baz if target_id in data.allow\n", "in with a computed collection"),
])
def test_tests_against_computed_values_are_found_and_literals_are_not(rule: str, why: str) -> None:
    from hitlgate.engine.decide._regoscan import MAX_ALIAS_ROUNDS, target_tests

    base = "package hitlgate\ntarget_id := input.action.target\n"
    assert target_tests([("m.rego", base + rule)]) == [("m.rego", why)]
    swept = base + 'a if target_id == "x"\nb if target_id in ["p", "q"]\nc if target_id != "z"\n' \
        "d if { some i; input.inventory.protected[i] == target_id }\n"
    assert target_tests([("m.rego", swept)]) == []
    # A long chain of names bound to the id is named, and found quickly, not followed for minutes.
    chain = base + "a0 := target_id\n" + "".join(f"a{i} := a{i - 1}\n" for i in range(1, 1000))
    assert target_tests([("m.rego", chain)]) == [("m.rego", f"more than {MAX_ALIAS_ROUNDS} rounds of names bound to")]


def test_cap_on_unknown_ids_marks_the_diff_incomplete(base_repo: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # The change's own literal comes first, so even a small cap sweeps it; the rest are counted and reported.
    monkeypatch.setattr(_policydiff, "MAX_UNKNOWN_TARGETS", 3)
    run = _pr(base_repo, tmp_path, 'endswith(target_id, "-prod")', "--fail-on", "never")
    assert run.exit_code == 0, run.stdout
    assert run.doc["diff"]["compared"]["unknown-target sweep"] == 4 * 9 * 3
    targets = {p["target"] for c in run.doc["diff"]["changes"] for p in c["proposals"]}
    # "-prod" and "-prod" + suffix cannot be ids (an id starts with a letter or digit); prefix + "-prod" is one.
    assert targets == {UNKNOWN_PREFIX + "-prod"}
    step = run.step("diff-complete")
    assert step["status"] == "note"
    assert any("unknown target id(s) derived from the modules' string literals were not swept" in f["message"]
               for f in step["findings"])


def test_unknown_ids_never_collide_with_inventory_ids() -> None:
    inventory = {UNKNOWN_TARGET, "svc-", UNKNOWN_PREFIX + "team-a"}
    ids, cut = unknown_targets(['package p\nx := "svc-"\ny := "team-a"\nz := "not an id"\n'],
                               ['package p\nx := "svc-"\n'], inventory.__contains__)
    assert cut == 0
    assert not inventory & set(ids)
    # A literal only one side has comes first; text that cannot be an id ("not an id") is skipped.
    assert ids == [UNKNOWN_TARGET + "-2", "team-a", "team-a" + UNKNOWN_SUFFIX,
                   "svc-" + UNKNOWN_SUFFIX, UNKNOWN_PREFIX + "svc-"]

"""Fault: the audit anchor is deleted after the first checkpoint.

Before the fix, ``audit verify`` reported it once, then the next checkpoint
silently re-created the file and verify said OK from then on, although the
checkpoints the lost anchor held were gone. Now a missing anchor with
checkpoints in the database stops every write until an operator runs
``hitlgate audit anchor --reinit --reason TEXT``, which is itself an audit
event that ``audit verify`` keeps reporting.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import AuditChainError, InputError, StorageError
from tests.workflow._helpers import granted_warrant, proposal
from tests.workflow._helpers import run_cli as _run


@pytest.fixture
def anchored(engine: Engine) -> Engine:
    """An engine whose database holds one checkpoint, anchored."""
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.checkpoint()
    assert engine.anchor.exists()
    return engine


def test_deleted_anchor_stops_writes_instead_of_being_recreated(anchored: Engine) -> None:
    anchored.anchor.path.unlink()
    with pytest.raises(StorageError, match="^" + re.escape(
            f"the audit anchor {anchored.anchor.path} is missing, but the database holds signed checkpoints: it was "
            "deleted or moved, and without it a rewrite of the database cannot be ruled out. Restore it from a "
            "backup (or verify with `--anchor` copies kept elsewhere); if it is lost for good, start a new one "
            "with `hitlgate audit anchor --reinit --reason TEXT`, which is recorded in the audit chain; until then "
            "the engine refuses to write") + "$") as exc:
        anchored.checkpoint()
    assert exc.value.code == "anchor_missing"
    events_before = len(anchored.audit_events())
    with pytest.raises(StorageError, match="refuses to write"):
        anchored.propose(proposal("suspend_service_account", "svc-ci-runner"))
    # Nothing was written, the anchor was not silently re-created, and verify keeps saying so.
    assert len(anchored.audit_events()) == events_before
    assert not anchored.anchor.exists()
    with pytest.raises(AuditChainError, match="is missing, but the database holds 1 signed checkpoint"):
        anchored.verify_audit()


def test_reinit_is_an_audit_event_and_verify_keeps_reporting_it(anchored: Engine) -> None:
    anchored.anchor.path.unlink()
    with pytest.raises(InputError, match="a reason is required"):
        anchored.reinit_anchor("  ")
    cp = anchored.reinit_anchor("disk replaced, INC-42")
    events = anchored.audit_events()
    assert events[-1].kind == "anchor_reinitialized" and cp.seq == events[-1].seq
    assert events[-1].payload["reason"] == "disk replaced, INC-42"
    assert events[-1].payload["last_checkpoint_seq"] == 2
    report = anchored.verify_audit()
    assert report.anchor_reinits == (cp.seq,) and report.anchored == 1
    assert f"the anchor was re-initialised at #{cp.seq}" in report.describe()
    # Writes work again; a second reinit while the anchor exists is refused.
    req, token = granted_warrant(anchored, proposal("suspend_service_account", "svc-ci-runner"), ("carol",))
    assert anchored.get(req.id).status == "granted" and token
    with pytest.raises(InputError, match="exists; --reinit only starts a new one when it is lost"):
        anchored.reinit_anchor("again")


def test_cli_audit_anchor_reinit(tmp_path: Path) -> None:
    cfg = tmp_path / "hitlgate.yaml"
    cfg.write_text(f"state: sqlite:///{tmp_path / 'state.db'}\nkeys: {tmp_path / 'keys'}\n")
    env = {"HITLGATE_CONFIG": str(cfg)}
    prop = tmp_path / "p.json"
    prop.write_text(json.dumps(proposal("suspend_service_account", "svc-ci-runner")))
    _run(env, "propose", str(prop), code=4)  # pending approval
    _run(env, "audit", "checkpoint")
    anchor = tmp_path / "keys" / "audit-anchor.jsonl"
    anchor.unlink()
    assert "refuses to write" in _run(env, "audit", "checkpoint", code=1).output
    assert not anchor.exists()
    assert "pass --reinit" in _run(env, "audit", "anchor", code=2).output
    assert "--reinit needs --reason" in _run(env, "audit", "anchor", "--reinit", code=2).output
    out = json.loads(_run(env, "audit", "anchor", "--reinit", "--reason", "restored host", "--json").stdout)
    assert out["anchor"] == str(anchor) and out["checkpoint"]["seq"] == 3
    verify = json.loads(_run(env, "audit", "verify", "--json").stdout)
    assert verify["ok"] and verify["anchor_reinits"] == [3]
    _run(env, "propose", str(prop), code=4)


def test_reinit_reason_is_bounded_trimmed_and_recorded_with_the_time_given(anchored: Engine, clock) -> None:
    anchored.anchor.path.unlink()
    with pytest.raises(InputError, match="^the reason is longer than 2000 characters$"):
        anchored.reinit_anchor("x" * 2001)
    with pytest.raises(InputError, match=r"^a reason is required to re-initialise the audit anchor \(--reason TEXT\)$"):
        anchored.reinit_anchor(None)  # type: ignore[arg-type]
    at = clock.now + timedelta(minutes=5)
    cp = anchored.reinit_anchor("  " + "y" * 2000 + "\n", now=at)
    last = anchored.audit_events()[-1]
    assert (last.request_id, last.at, cp.at) == (None, at, at)
    assert last.payload["reason"] == "y" * 2000
    assert last.payload["anchor"] == str(anchored.anchor.path)
    with pytest.raises(InputError, match="exists; --reinit only starts") as exc:
        anchored.reinit_anchor("again")
    assert exc.value.code == "anchor_present"


def test_reinit_of_a_chain_never_checkpointed_names_no_last_checkpoint(engine: Engine) -> None:
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert not engine.anchor.exists()
    engine.reinit_anchor("first anchor on a new host")
    assert engine.audit_events()[-1].payload["last_checkpoint_seq"] is None


def test_anchor_deleted_with_the_whole_key_directory_says_how_to_start_again(anchored: Engine) -> None:
    anchored.anchor.path.unlink()
    shutil.rmtree(anchored.keyring.key_dir)
    with pytest.raises(StorageError, match="^" + re.escape(
            f"the audit anchor {anchored.anchor.path} is missing and the engine key directory "
            f"{anchored.keyring.key_dir} holds no keyring: both were deleted or another directory is configured. "
            "Restore them from a backup; if they are lost for good, run `hitlgate keys reinit --reason TEXT` "
            "(recorded in the audit chain; it starts a new anchor too); until then the engine refuses to write")
            + "$") as exc:
        anchored.checkpoint()
    assert exc.value.code == "anchor_missing"


def test_a_new_anchor_started_by_a_warrant_is_noted_in_the_keyring(engine: Engine) -> None:
    # Issue and consume checkpoints skip the keyring note, except for the first line of a new anchor: without
    # that note, deleting the anchor together with every checkpoint row would go unnoticed.
    assert not engine.anchor.exists() and engine.keyring.anchor_note() is None
    granted_warrant(engine, proposal("suspend_service_account", "svc-ci-runner"), ("carol",))
    [cp] = list(engine.anchor.iter_checkpoints())
    assert cp.seq % engine.audit_log.checkpoint_every != 0, "the first checkpoint must be the warrant's own"
    note = engine.keyring.anchor_note()
    assert note is not None and (note.path, note.seq) == (str(engine.anchor.path), cp.seq)


def test_later_warrant_checkpoints_skip_the_note_and_periodic_ones_write_it(engine: Engine) -> None:
    # The note costs two fsyncs: a warrant's own checkpoint (after the anchor's first line) does not write it,
    # a periodic or on-demand checkpoint does.
    granted_warrant(engine, proposal("suspend_service_account", "svc-ci-runner"), ("carol",))
    first = engine.keyring.anchor_note()
    granted_warrant(engine, proposal("suspend_service_account", "svc-ci-runner", ticket="2"), ("carol",))
    seqs = [cp.seq for cp in engine.anchor.iter_checkpoints()]
    assert len(seqs) == 2 and all(seq % engine.audit_log.checkpoint_every for seq in seqs)
    assert engine.keyring.anchor_note() == first
    on_demand = engine.checkpoint()
    note = engine.keyring.anchor_note()
    assert note is not None and (note.path, note.seq) == (str(engine.anchor.path), on_demand.seq)


def test_a_warrant_checkpoint_that_is_also_periodic_writes_the_note(make_engine) -> None:  # noqa: ANN001
    # Each auto-allowed proposal appends four events, the fourth its warrant's: with a checkpoint every four
    # events, the second warrant's checkpoint (seq 8) is a periodic one too, and is noted.
    engine: Engine = make_engine(checkpoint_every=4)
    for ticket in ("1", "2"):
        req = engine.propose(proposal("rotate_api_key", "dev-analytics-key", ticket=ticket))
        assert req.status == "granted"
    assert [cp.seq for cp in engine.anchor.iter_checkpoints()] == [4, 8]
    note = engine.keyring.anchor_note()
    assert note is not None and note.seq == 8


def test_with_a_checkpoint_every_event_the_anchor_can_still_be_started_again(make_engine) -> None:  # noqa: ANN001
    # The re-initialisation event gets its own periodic checkpoint here: that checkpoint starts the new
    # anchor too, instead of being refused for the anchor that is missing.
    engine: Engine = make_engine(checkpoint_every=1)
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.anchor.path.unlink()
    cp = engine.reinit_anchor("disk replaced, INC-11")
    last = engine.audit_events()[-1]
    assert cp.seq == last.seq and [c.seq for c in engine.anchor.iter_checkpoints()][-1] == last.seq
    report = engine.verify_audit()
    assert (report.events, report.head_seq, report.anchor_reinits) == (last.seq, last.seq, (last.seq,))


def test_a_periodic_checkpoint_is_signed_at_its_events_time(make_engine, clock) -> None:  # noqa: ANN001
    # Not at the wall clock's: an event recorded with an explicit (or test) time is checkpointed at that time.
    engine: Engine = make_engine(checkpoint_every=1)
    req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with engine.store.read() as tx:
        cp = tx.last_checkpoint()
    assert cp is not None and cp.at == req.created_at == clock.now

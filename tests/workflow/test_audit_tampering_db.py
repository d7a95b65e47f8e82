"""Audit tampering by someone with database write access, caught by the anchor outside the database.

The attacker can edit, delete and insert any row, including the signed
checkpoints, and recompute every hash; they cannot write the engine's key
directory, where the audit anchor lives. Real crypto, real SQLite and
PostgreSQL (through ``db_url``).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.config import Config
from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.engine.ledger.anchor import ANCHOR_FILE, AuditAnchor
from hitlgate.engine.ledger.audit import Checkpoint, next_event, sign_checkpoint, verify_chain
from hitlgate.errors import AuditChainError, StorageError
from tests.workflow._helpers import proposal, rewrite_chain
from tests.workflow._helpers import run_cli as _run

# -- what the attacker does with database access -------------------------


def _delete_checkpoints(engine: Engine, *seqs: int) -> None:
    """Delete the given checkpoint rows (all of them when none are named)."""
    with engine.store.engine.begin() as conn:
        q = sa.delete(t.checkpoints)
        conn.execute(q.where(t.checkpoints.c.seq.in_(seqs)) if seqs else q)


def _truncate(engine: Engine, keep: int) -> None:
    """Delete every event after seq ``keep`` and every checkpoint, and move the head back."""
    events = engine.audit_events()
    with engine.store.engine.begin() as conn:
        conn.execute(sa.delete(t.audit_events).where(t.audit_events.c.seq > keep))
        conn.execute(sa.delete(t.checkpoints))
        conn.execute(t.audit_head.update().where(t.audit_head.c.id == 1)
                     .values(seq=keep, hash=events[keep - 1].hash))


def _hide_requester(payload: dict[str, Any]) -> None:
    payload["requester"] = {"id": "someone-else", "kind": "human"}


def _history(engine: Engine) -> tuple[list[Any], list[Checkpoint]]:
    with engine.store.read() as tx:
        return tx.events(), list(tx.iter_checkpoints())


@pytest.fixture
def busy(engine: Engine) -> Engine:
    """An engine with events 1-2 (pending request), a checkpoint at 2, events 3-6 (auto_allow), one at 6."""
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert engine.checkpoint().seq == 2
    engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    assert engine.checkpoint().seq == 6
    return engine


def _anchor_lines(engine: Engine) -> list[dict[str, Any]]:
    return [json.loads(line) for line in engine.anchor.path.read_text().splitlines()]


def _write_anchor_lines(engine: Engine, docs: list[dict[str, Any]]) -> None:
    engine.anchor.path.write_text("".join(json.dumps(d) + "\n" for d in docs))


# -- the clean run -----------------------------------------------------------


def test_clean_run_is_ok_and_every_checkpoint_is_anchored(busy: Engine, tmp_path: Path) -> None:
    report = busy.verify_audit()
    assert (report.events, report.checkpoints, report.anchored, report.head_seq) == (6, 2, 2, 6)
    assert report.anchor == str(tmp_path / "keys" / ANCHOR_FILE)
    path = busy.anchor.path
    assert path == tmp_path / "keys" / ANCHOR_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = _anchor_lines(busy)
    _, stored = _history(busy)
    # Issuing the auto_allow warrant (event 6) anchored a checkpoint of it, which the database keeps; the
    # on-demand checkpoint of the same head only adds a duplicate line to the anchor.
    assert [d["seq"] for d in lines] == [2, 6, 6] and lines[2]["head_hash"] == lines[1]["head_hash"]
    assert [(d["record"], d["seq"], d["head_hash"], d["at"], d["token"]) for d in lines[:2]] == [
        ("checkpoint", cp.seq, cp.head_hash, cp.to_dict()["at"], cp.token) for cp in stored
    ]
    assert "anchored outside the database" in report.describe()


def test_periodic_checkpoints_are_anchored_too(make_engine: Callable[..., Engine]) -> None:
    eng = make_engine(checkpoint_every=3)
    for _ in range(3):
        eng.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert [d["seq"] for d in _anchor_lines(eng)] == [3, 6]
    assert eng.verify_audit().anchored == 2


def test_new_store_without_checkpoints_or_anchor_is_ok(make_engine: Callable[..., Engine]) -> None:
    eng = make_engine()
    assert eng.verify_audit().events == 0
    eng.propose(proposal("suspend_service_account", "svc-ci-runner"))
    report = eng.verify_audit()
    assert (report.events, report.checkpoints, report.anchored) == (2, 0, 0)
    assert not eng.anchor.path.exists()


def test_a_second_checkpoint_of_the_same_head_counts_once(busy: Engine) -> None:
    busy.checkpoint()  # Head already checkpointed in the database; the anchor gets a duplicate.
    assert [d["seq"] for d in _anchor_lines(busy)] == [2, 6, 6, 6]
    assert busy.verify_audit().anchored == 2


# -- attacks with database access ------------------------------------------


def test_delete_all_db_checkpoints_and_rewrite_chain_is_detected_via_anchor(busy: Engine) -> None:
    _delete_checkpoints(busy)
    rewrite_chain(busy, 1, _hide_requester)
    events, stored = _history(busy)
    # The database alone now agrees with itself: this is the attack.
    assert stored == [] and verify_chain(events).events_checked == 6
    with pytest.raises(AuditChainError, match="event seq 2 differs from the signed checkpoint") as err:
        busy.verify_audit()
    msg = str(err.value)
    assert msg.startswith("event seq 2 differs from the signed checkpoint at seq 2: history from the start")
    assert "2 signed checkpoint(s) held by an anchor are missing from the store (seq 2, 6)" in msg


def test_rewrite_after_the_first_anchored_checkpoint_names_the_narrowed_range(busy: Engine) -> None:
    _delete_checkpoints(busy)
    rewrite_chain(busy, 4, lambda p: p.update(reason="nothing to see"))
    with pytest.raises(AuditChainError, match="event seq 6 differs .*history after seq 2 up to seq 6 was rewritten"):
        busy.verify_audit()


def test_deleted_checkpoint_row_is_detected(busy: Engine) -> None:
    _delete_checkpoints(busy, 2)
    with pytest.raises(AuditChainError, match=r"^1 signed checkpoint\(s\) held by an anchor are missing from "
                                              r"the store \(seq 2\): checkpoints were deleted$"):
        busy.verify_audit()


def test_many_deleted_checkpoint_rows_are_counted_and_the_first_ten_named(engine: Engine) -> None:
    seqs = []
    for _ in range(11):
        engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
        seqs.append(engine.checkpoint().seq)
    _delete_checkpoints(engine, *seqs[:10])
    with pytest.raises(AuditChainError, match=rf"^10 signed checkpoint\(s\) held by an anchor are missing from "
                                              rf"the store \(seq {', '.join(map(str, seqs[:10]))}\): checkpoints"):
        engine.verify_audit()
    _delete_checkpoints(engine)
    with pytest.raises(AuditChainError, match=rf"^11 signed checkpoint\(s\) held by an anchor are missing from "
                                              rf"the store \(seq {', '.join(map(str, seqs[:10]))}, \.\.\.\): "
                                              "checkpoints were deleted$"):
        engine.verify_audit()


def test_truncation_below_an_anchored_checkpoint_is_detected(busy: Engine) -> None:
    _truncate(busy, keep=4)
    assert verify_chain(_history(busy)[0]).last_seq == 4
    with pytest.raises(AuditChainError, match="signed checkpoint at seq 6 but the chain ends at seq 4: .*truncated"):
        busy.verify_audit()


def test_truncation_and_regrowth_is_detected(busy: Engine) -> None:
    """Cut the chain back to seq 4: the engine refuses to refill seq 5 and 6, and verify names the truncation."""
    _truncate(busy, keep=4)
    with pytest.raises(AuditChainError, match=r"holds a signed checkpoint at seq 6, but the database chain ends "
                                              r"at seq 4: events were deleted") as exc:
        busy.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert exc.value.code == "chain_truncated"
    with pytest.raises(AuditChainError, match="signed checkpoint at seq 6 but the chain ends at seq 4"):
        busy.verify_audit()


def test_anchor_line_edited_is_refused(busy: Engine) -> None:
    events, _ = _history(busy)
    _delete_checkpoints(busy)
    rewrite_chain(busy, 1, _hide_requester)
    rewritten, _ = _history(busy)
    # Point the anchor's readable fields at the rewritten chain: the token still signs the original.
    lines = _anchor_lines(busy)
    lines[1]["head_hash"] = rewritten[5].hash
    _write_anchor_lines(busy, lines)
    with pytest.raises(AuditChainError, match="anchored checkpoint at seq 6: stored fields differ"):
        busy.verify_audit()
    # Splice another checkpoint's signed claims into the token: the signature breaks.
    lines = _anchor_lines(busy)
    header, _, sig = lines[0]["token"].split(".")
    lines[0]["token"] = f"{header}.{lines[1]['token'].split('.')[1]}.{sig}"
    _write_anchor_lines(busy, lines)
    with pytest.raises(AuditChainError, match="anchored checkpoint at seq 2 is forged or corrupt: signature"):
        busy.verify_audit()
    assert events[0].hash != rewritten[0].hash


def test_anchor_line_forged_by_another_key_is_refused(busy: Engine, tmp_path: Path) -> None:
    _delete_checkpoints(busy)
    rewrite_chain(busy, 1, _hide_requester)
    rewritten, _ = _history(busy)
    forger = EngineKeyring.load_or_create(tmp_path / "forger-keys")
    forged = sign_checkpoint(forger, rewritten[5])
    _write_anchor_lines(busy, [{"record": "checkpoint", **forged.to_dict()}])
    with pytest.raises(AuditChainError, match="anchored checkpoint at seq 6 is forged or corrupt: unknown kid"):
        busy.verify_audit()


def test_malformed_anchor_line_is_named(busy: Engine) -> None:
    with busy.anchor.path.open("a") as fh:
        fh.write('{"record": "checkpoint", "seq": 7}\n')
    with pytest.raises(AuditChainError, match=r"audit anchor .*audit-anchor\.jsonl: export line 4 is malformed"):
        busy.verify_audit()


def test_anchor_holding_events_is_refused(busy: Engine) -> None:
    event = busy.audit_events()[0]
    with busy.anchor.path.open("a") as fh:
        fh.write(json.dumps({"record": "event", **event.to_dict()}) + "\n")
    with pytest.raises(AuditChainError, match="holds audit events"):
        busy.verify_audit()


def test_anchor_removed_while_db_has_checkpoints_is_reported(busy: Engine) -> None:
    busy.anchor.path.unlink()
    with pytest.raises(AuditChainError, match=r"audit anchor .*audit-anchor\.jsonl is missing, but the database "
                                              r"holds 2 signed checkpoint\(s\): it was deleted or moved"):
        busy.verify_audit()


def test_auditor_anchor_copy_catches_what_local_copies_lost(busy: Engine, tmp_path: Path) -> None:
    """Database checkpoints and the engine's anchor both gone: the auditor's copy still catches the rewrite."""
    copy = tmp_path / "auditor-anchor.jsonl"
    copy.write_bytes(busy.anchor.path.read_bytes())
    from hitlgate.engine.ledger.anchor import load_external_anchor

    _delete_checkpoints(busy)
    busy.anchor.path.unlink()
    rewrite_chain(busy, 1, _hide_requester)
    # The keyring (outside the database) still records that the anchor existed.
    with pytest.raises(AuditChainError, match="holds no checkpoint, while the keyring records that the anchor"):
        busy.verify_audit()
    with pytest.raises(AuditChainError, match="event seq 2 differs from the signed checkpoint"):
        busy.verify_audit(anchors=load_external_anchor(copy))


# -- the anchor must be written, or the checkpoint fails -------------------


def test_unwritable_anchor_fails_the_checkpoint_and_rolls_back(make_engine: Callable[..., Engine],
                                                                tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file")
    eng = make_engine(config={"audit_anchor": blocker / "anchor.jsonl"})
    eng.propose(proposal("suspend_service_account", "svc-ci-runner"))
    with pytest.raises(StorageError, match=r"cannot open the audit anchor .*not-a-dir/anchor\.jsonl"):
        eng.checkpoint()
    assert _history(eng)[1] == []


def test_unwritable_anchor_fails_a_periodic_checkpoint_with_its_change(make_engine: Callable[..., Engine],
                                                                       tmp_path: Path) -> None:
    anchor_dir = tmp_path / "anchor-is-a-dir"
    anchor_dir.mkdir()
    eng = make_engine(checkpoint_every=2, config={"audit_anchor": anchor_dir})
    with pytest.raises(StorageError, match="audit anchor"):
        eng.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert eng.audit_events() == [] and eng.list() == []


def test_anchor_write_failure_after_commit_is_loud(make_engine: Callable[..., Engine], tmp_path: Path) -> None:
    class DiskFull(AuditAnchor):
        def append(self, checkpoints: Any) -> None:
            raise StorageError(f"cannot append to the audit anchor {self.path}: No space left on device")

    eng = make_engine(anchor=DiskFull(tmp_path / "keys" / ANCHOR_FILE))
    eng.propose(proposal("suspend_service_account", "svc-ci-runner"))
    message = (f"cannot append to the audit anchor {eng.anchor.path}: No space left on device. The change and the "
               "checkpoint at seq 2 were committed to the database, but the checkpoint is not anchored outside it: "
               "fix the anchor, then run `hitlgate audit checkpoint`")
    with pytest.raises(StorageError, match="^" + re.escape(message) + "$"):
        eng.checkpoint()
    # The commit stands (the database keeps its checkpoint); nothing false went to the anchor.
    assert [cp.seq for cp in _history(eng)[1]] == [2]
    assert eng.anchor.path.read_text() == ""


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o622], ids=lambda m: f"{m:04o}")
def test_group_writable_anchor_is_refused(busy: Engine, mode: int) -> None:
    os.chmod(busy.anchor.path, mode)
    message = (f"the audit anchor {busy.anchor.path} is writable by group or others (mode {mode:04o}); "
               f"run: chmod 600 {busy.anchor.path}")
    with pytest.raises(StorageError, match="^" + re.escape(message) + "$"):
        busy.checkpoint()


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o755], ids=lambda m: f"{m:04o}")
def test_an_anchor_others_can_only_read_is_used(busy: Engine, mode: int) -> None:
    # Only a write bit lets someone else rewrite the history: read and execute bits are not refused.
    os.chmod(busy.anchor.path, mode)
    before = busy.anchor.path.read_text()
    busy.propose(proposal("rotate_api_key", "dev-analytics-key"))
    busy.checkpoint()
    assert busy.anchor.path.read_text().startswith(before)
    assert len(busy.anchor.path.read_text().splitlines()) > len(before.splitlines())


# -- configuration ---------------------------------------------------------


def test_audit_anchor_config_key(tmp_path: Path) -> None:
    cfg = tmp_path / "conf" / "hitlgate.yaml"
    cfg.parent.mkdir()
    cfg.write_text("keys: keys\naudit_anchor: ../elsewhere/anchor.jsonl\n")
    config = Config.from_file(cfg)
    assert config.audit_anchor == (tmp_path / "conf" / "../elsewhere/anchor.jsonl")
    assert config.anchor_path == config.audit_anchor
    cfg.write_text("keys: keys\n")
    config = Config.from_file(cfg)
    assert config.audit_anchor is None
    assert config.anchor_path == tmp_path / "conf" / "keys" / ANCHOR_FILE


# -- the CLI -------------------------------------------------------------------


def test_cli_audit_verify_with_anchor_and_offline_jwks(tmp_path: Path) -> None:
    cfg = tmp_path / "hitlgate.yaml"
    cfg.write_text(f"state: sqlite:///{tmp_path / 'state.db'}\nkeys: {tmp_path / 'keys'}\n")
    env = {"HITLGATE_CONFIG": str(cfg)}
    prop = tmp_path / "p.json"
    prop.write_text(json.dumps(proposal("suspend_service_account", "svc-ci-runner")))
    _run(env, "propose", str(prop), code=4)  # pending approval
    _run(env, "audit", "checkpoint")
    ok = json.loads(_run(env, "audit", "verify", "--json").stdout)
    assert (ok["ok"], ok["checkpoints"], ok["anchored"]) == (True, 1, 1)

    # What an auditor takes away: the JWKS (all keys), an export, a copy of the anchor.
    jwks = tmp_path / "jwks.json"
    jwks.write_text(_run(env, "keys", "jwks", "--all").stdout)
    export = tmp_path / "export.jsonl"
    _run(env, "audit", "export", "--out", str(export))
    copy = tmp_path / "anchor-copy.jsonl"
    copy.write_bytes((tmp_path / "keys" / ANCHOR_FILE).read_bytes())

    # Offline: only the JWKS, the export and the anchor copy; a config naming nothing that exists.
    offline = tmp_path / "offline.yaml"
    offline.write_text(f"state: sqlite:///{tmp_path / 'nowhere' / 'x.db'}\nkeys: {tmp_path / 'nokeys'}\n")
    out = json.loads(_run({"HITLGATE_CONFIG": str(offline)}, "audit", "verify", "--jwks", str(jwks),
                          "--file", str(export), "--anchor", str(copy), "--anchor", str(export), "--json").stdout)
    assert (out["ok"], out["events"], out["checkpoints"], out["anchored"]) == (True, 2, 1, 1)
    assert not (tmp_path / "nokeys").exists() and not (tmp_path / "nowhere").exists()

    # An export whose checkpoints were stripped and whose chain was rewritten: the anchor copy catches it.
    events = [json.loads(line) for line in export.read_text().splitlines() if '"event"' in line]
    events[0]["payload"]["requester"] = {"id": "someone-else", "kind": "human"}
    prev = None
    forged_lines = []
    for doc in events:
        from hitlgate.engine.ledger.audit import AuditEvent

        ev = AuditEvent.from_dict({k: v for k, v in doc.items() if k != "record"})
        prev = next_event(prev, kind=ev.kind, request_id=ev.request_id, payload=ev.payload, at=ev.at)
        forged_lines.append(json.dumps({"record": "event", **prev.to_dict()}))
    forged = tmp_path / "forged-export.jsonl"
    forged.write_text("\n".join(forged_lines) + "\n")
    assert "OK" in _run(env, "audit", "verify", "--jwks", str(jwks), "--file", str(forged)).output
    err = _run(env, "audit", "verify", "--jwks", str(jwks), "--file", str(forged), "--anchor", str(copy), code=3)
    assert "event seq 2 differs from the signed checkpoint" in err.output

    # The store itself: checkpoints deleted and the engine's anchor gone; --anchor still catches the rewrite.
    eng = Engine.from_config(Config.from_file(cfg))
    try:
        _delete_checkpoints(eng)
        rewrite_chain(eng, 1, _hide_requester)
    finally:
        eng.close()
    err = _run(env, "audit", "verify", code=3)
    assert "missing from the store" in err.output
    (tmp_path / "keys" / ANCHOR_FILE).unlink()
    assert "while the keyring records that the anchor" in _run(env, "audit", "verify", code=3).output
    err = _run(env, "audit", "verify", "--anchor", str(copy), code=3)
    assert "event seq 2 differs from the signed checkpoint" in err.output

    # Bad --anchor arguments are the caller's error.
    assert "does not exist" in _run(env, "audit", "verify", "--anchor", str(tmp_path / "none.jsonl"), code=2).output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "holds no signed checkpoint" in _run(env, "audit", "verify", "--anchor", str(empty), code=2).output


def test_event_edited_in_the_database_with_only_its_hash_recomputed_is_detected(
    make_engine: Callable[..., Engine],
) -> None:
    # No checkpoint exists yet: only the prev_hash link of the next event
    # exposes the edit.
    engine = make_engine()
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    events = engine.audit_events()
    assert len(events) >= 2
    first = events[0]
    payload = {**first.payload, "justification": "nothing to see here"}
    edited = next_event(None, kind=first.kind, request_id=first.request_id, payload=payload, at=first.at)
    with engine.store.engine.begin() as conn:
        conn.execute(t.audit_events.update().where(t.audit_events.c.seq == 1)
                     .values(payload=json.dumps(edited.payload, sort_keys=True), hash=edited.hash))
    with pytest.raises(AuditChainError, match=r"event seq 2 does not link to seq 1 \(prev_hash mismatch\)"):
        engine.verify_audit()

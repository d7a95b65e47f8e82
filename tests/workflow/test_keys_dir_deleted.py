"""Fault: the engine's key directory is deleted while the database holds its signatures.

Before the fix, the keyring silently created a fresh engine key; later every
``audit verify`` failed for good with "checkpoint ... forged or corrupt",
which points at tampering instead of at the lost keys. Creating a first key
while the database holds checkpoints or warrants by other keys is now
refused (``keyring_missing``), naming the directory and what to do; so is
signing with a keyring that does not know those keys.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.keys.keyring import RECHECK_SECONDS, STATE_FILE, EngineKeyring
from hitlgate.engine.ledger import _store_schema as t
from hitlgate.errors import AuditChainError, InputError, StorageError
from tests.workflow._helpers import proposal

AUTO = proposal("rotate_api_key", "dev-analytics-key")


def _anchor(tmp_path: Path) -> Path:
    """Where these tests keep the audit anchor: outside the key directory, so deleting the keys leaves it."""
    return tmp_path / "anchor" / "audit-anchor.jsonl"


REASON_REQUIRED = "a reason (1 to 2000 characters) is required to replace a lost keyring (--reason TEXT)"


def test_the_reason_for_a_replacement_is_at_most_2000_characters(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    _, keys = signed_store
    eng = _restart_without_keys(make_engine, tmp_path, keys)
    with pytest.raises(InputError, match=f"^{re.escape(REASON_REQUIRED)}$"):
        eng.replace_lost_keyring("x" * 2001)
    assert eng.replace_lost_keyring(" " + "x" * 2000 + " ")  # Trimmed first: 2000 characters are enough.
    assert eng.audit_events()[-1].payload["reason"] == "x" * 2000


def test_a_reason_the_audit_chain_cannot_hold_is_refused_before_the_keyring_is_replaced(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    # A lone surrogate (a shell byte that is not UTF-8): refused naming --reason, with no new keyring written,
    # so the real replacement afterwards is still possible and audited.
    _, keys = signed_store
    eng = _restart_without_keys(make_engine, tmp_path, keys)
    with pytest.raises(InputError, match=re.escape("--reason: character 6 ('\\udcff') is not UTF-8 text")) as err:
        eng.replace_lost_keyring("lost \udcff keys")
    assert err.value.code == "bad_encoding"
    assert not (keys / STATE_FILE).exists()
    assert eng.replace_lost_keyring("lost keys")
    assert eng.audit_events()[-1].kind == "keyring_replaced"


def _restart_without_keys(make_engine: Callable[..., Engine], tmp_path: Path, keys: Path) -> Engine:
    """Delete the engine key directory, then start an engine on the same database and anchor."""
    shutil.rmtree(keys)
    return make_engine(config={"audit_anchor": _anchor(tmp_path)})


def _replaced_after_loss(make_engine: Callable[..., Engine], tmp_path: Path, keys: Path, reason: str) -> Engine:
    """:func:`_restart_without_keys`, then the operator replaces the lost keyring, giving ``reason``."""
    engine = _restart_without_keys(make_engine, tmp_path, keys)
    engine.replace_lost_keyring(reason)
    return engine


@pytest.fixture
def signed_store(make_engine: Callable[..., Engine], tmp_path: Path) -> tuple[Engine, Path]:
    """An engine whose database holds a warrant and a checkpoint; its anchor lives outside the key directory."""
    eng = make_engine(config={"audit_anchor": _anchor(tmp_path)})
    assert eng.propose(AUTO).status == "granted"
    eng.checkpoint()
    return eng, tmp_path / "keys"


def test_new_engine_refuses_to_create_a_key_under_a_signed_database(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    _, keys = signed_store
    eng = _restart_without_keys(make_engine, tmp_path, keys)
    with pytest.raises(StorageError, match=rf"the engine key directory {keys} holds no keyring, but the database .* "
                                           r"holds checkpoints or warrants signed by engine key\(s\) .*Restore "
                                           rf"{keys} from a backup") as exc:
        eng.propose(AUTO)
    assert exc.value.code == "keyring_missing"
    assert not (keys / STATE_FILE).exists()
    with pytest.raises(StorageError, match="holds no keyring"):
        eng.checkpoint()


def test_running_engine_does_not_replace_deleted_keys(signed_store: tuple[Engine, Path]) -> None:
    eng, keys = signed_store
    shutil.rmtree(keys)
    time.sleep(RECHECK_SECONDS + 0.1)  # The running keyring notices the change at its next re-check.
    with pytest.raises(StorageError, match="holds no keyring") as exc:
        eng.propose(AUTO)
    assert exc.value.code == "keyring_missing"
    assert not (keys / STATE_FILE).exists()


def test_a_keyring_made_elsewhere_does_not_sign_for_this_database(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    _, keys = signed_store
    shutil.rmtree(keys)
    EngineKeyring.load_or_create(keys)  # What `hitlgate keys jwks` did after the loss.
    eng = make_engine(config={"audit_anchor": _anchor(tmp_path)})
    with pytest.raises(StorageError, match=rf"the engine key directory {keys} holds a keyring without those keys"):
        eng.checkpoint()
    with pytest.raises(StorageError, match="holds a keyring without those keys"):
        eng.propose(AUTO)


def test_a_fresh_database_still_gets_its_first_key(make_engine: Callable[..., Engine], tmp_path: Path) -> None:
    eng = make_engine()
    assert eng.propose(AUTO).status == "granted"
    assert (tmp_path / "keys" / STATE_FILE).exists()


def test_replacing_a_lost_keyring_is_explicit_and_audited(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    _, keys = signed_store
    eng = _restart_without_keys(make_engine, tmp_path, keys)
    for blank in (" ", "", None):
        with pytest.raises(InputError, match=f"^{re.escape(REASON_REQUIRED)}$"):
            eng.replace_lost_keyring(blank)  # type: ignore[arg-type]  # a caller that passes no text at all
    at = eng.now() + timedelta(seconds=7)  # An explicit time is the event's time, not the clock's.
    kid = eng.replace_lost_keyring("disk died, no backup (INC-7)", now=at)
    last = eng.audit_events()[-1]
    assert last.at == at
    assert last.kind == "keyring_replaced" and last.payload["kid"] == kid and last.payload["lost_kids"]
    assert kid not in last.payload["lost_kids"]
    # The event says who lost what, where, and whether the anchor started again: an auditor reads it whole.
    assert last.payload == {"reason": "disk died, no backup (INC-7)", "key_dir": str(keys),
                            "lost_kids": last.payload["lost_kids"], "kid": kid, "anchor_reinitialized": False}
    with eng.store.read() as tx:
        checkpoint = tx.last_checkpoint()
    assert checkpoint is not None and (checkpoint.seq, checkpoint.at, checkpoint.kid) == (last.seq, last.at, kid)
    report = eng.verify_audit()
    assert report.unverifiable_checkpoints == 1
    assert "1 checkpoint(s) signed by lost engine keys are not verifiable with the local keys" in report.describe()
    assert eng.propose(AUTO).status == "granted"
    with pytest.raises(InputError) as present:
        eng.replace_lost_keyring("again")
    assert str(present.value) == (f"the engine key directory {keys} holds a keyring; nothing to replace "
                                  "(`hitlgate keys rotate` makes a new key and keeps the old ones)")
    assert present.value.code == "keyring_present"
    # The replacement is one act: once it is done, losing the new keys is refused like the first loss,
    # by the same running engine (it does not stay in "replacing" and mint a third key in silence).
    shutil.rmtree(keys)
    time.sleep(RECHECK_SECONDS + 0.1)  # The running keyring notices the change at its next re-check.
    with pytest.raises(StorageError, match="holds no keyring") as lost_again:
        eng.propose(AUTO)
    assert lost_again.value.code == "keyring_missing"
    assert not (keys / STATE_FILE).exists()


def test_cli_keys_reinit(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hitlgate.cli import cli

    cfg = tmp_path / "hitlgate.yaml"
    cfg.write_text(f"state: sqlite:///{tmp_path / 'state.db'}\nkeys: {tmp_path / 'keys'}\n")
    env = {"HITLGATE_CONFIG": str(cfg)}
    prop = tmp_path / "p.json"
    prop.write_text(json.dumps(AUTO))
    runner = CliRunner()
    assert runner.invoke(cli, ["propose", str(prop)], env=env).exit_code == 0
    shutil.rmtree(tmp_path / "keys")
    lost = runner.invoke(cli, ["propose", str(prop)], env=env)
    assert lost.exit_code == 1 and "hitlgate keys reinit --reason TEXT" in lost.output
    done = runner.invoke(cli, ["keys", "reinit", "--reason", "no backup"], env=env)
    assert done.exit_code == 0 and "new engine keyring in" in done.output, done.output
    assert runner.invoke(cli, ["propose", str(prop)], env=env).exit_code == 0
    verify = runner.invoke(cli, ["audit", "verify"], env=env)
    assert verify.exit_code == 0 and "audit chain OK" in verify.output, verify.output


def test_refusal_names_the_lost_key_and_the_two_ways_out(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    # The operator reading this at 3 a.m. needs the key id to look for in
    # backups and the exact command for giving up on them; both are tested
    # word for word.
    eng, keys = signed_store
    with eng.store.read() as tx:
        (kid,) = tx.signing_kids()
    again = _restart_without_keys(make_engine, tmp_path, keys)
    expected = (
        f"the engine key directory {keys} holds no keyring, but the database {again.store.url_for_people} holds "
        f"checkpoints or warrants signed by engine key(s) {kid}: the keys were deleted "
        "or another key directory is configured. Refusing to sign with a new key, which would make every "
        f"later `audit verify` fail as if the audit log were forged. Restore {keys} from a backup "
        "(keyring.json and the current <kid>.pem), or point the configuration's `keys` at it. If the keys "
        "are lost for good, start a new keyring on purpose with `hitlgate keys reinit --reason TEXT` "
        "(recorded in the audit chain)"
    )
    with pytest.raises(StorageError) as exc:
        again.propose(AUTO)
    assert str(exc.value) == expected


def test_every_checkpoint_of_the_lost_keys_is_counted(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    # A monitoring job alerts on the number: two lost checkpoints must read 2, not "some".
    eng, keys = signed_store
    assert eng.propose(AUTO).status == "granted"
    eng.checkpoint()
    with eng.store.read() as tx:
        before = sum(1 for _ in tx.iter_checkpoints())
    assert before >= 2
    fresh = _replaced_after_loss(make_engine, tmp_path, keys, "disk died, no backup (INC-8)")
    report = fresh.verify_audit()
    assert report.unverifiable_checkpoints == before


@pytest.mark.parametrize("reinit_first", [True, False],
                         ids=["anchor-reinit-then-key-loss", "key-loss-then-anchor-reinit"])
def test_lost_checkpoints_are_counted_beside_an_anchor_reinit(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path, reinit_first: bool
) -> None:
    # The bookkeeping reads every rare event: an anchor re-initialisation, logged before or after
    # the keys were lost, must not hide the keyring_replaced event.
    eng, keys = signed_store
    anchor = _anchor(tmp_path)
    if reinit_first:
        anchor.unlink()
        eng.reinit_anchor("disk replaced, INC-9")
    with eng.store.read() as tx:
        before = sum(1 for _ in tx.iter_checkpoints())
    fresh = _replaced_after_loss(make_engine, tmp_path, keys, "disk died, no backup (INC-10)")
    if not reinit_first:
        anchor.unlink()
        fresh.reinit_anchor("anchor disk replaced, INC-14")
    order = ["anchor_reinitialized", "keyring_replaced"] if reinit_first else ["keyring_replaced",
                                                                                "anchor_reinitialized"]
    assert [e.kind for e in fresh.audit_events() if e.kind in order] == order
    report = fresh.verify_audit()
    assert report.unverifiable_checkpoints == before


def test_checkpoints_of_keys_lost_twice_are_all_counted(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    # Keys lost twice: the first replacement names a key the current keyring no longer holds; the
    # second replacement, signed by the current key, declares that key lost and so vouches for it.
    _, keys = signed_store
    second = _replaced_after_loss(make_engine, tmp_path, keys, "first loss (INC-11)")
    assert second.propose(AUTO).status == "granted"
    second.checkpoint()
    third = _replaced_after_loss(make_engine, tmp_path, keys, "second loss (INC-12)")
    with third.store.read() as tx:
        kids = [cp.kid for cp in tx.iter_checkpoints()]
    current = third.audit_events()[-1].payload["kid"]
    report = third.verify_audit()
    # Every checkpoint signed by either lost key is counted; none is reported as forged.
    assert len({k for k in kids if k != current}) == 2
    assert report.unverifiable_checkpoints == sum(1 for k in kids if k != current)


def test_replacement_whose_checkpoint_is_reattributed_excuses_nothing(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    # Threat: a database writer makes a keyring_replaced event's own checkpoint name another key.
    # The event counts only with a checkpoint by the new key it names; without one, the lost keys'
    # checkpoints are not excused, and verify stops at the first of them.
    _, keys = signed_store
    fresh = _replaced_after_loss(make_engine, tmp_path, keys, "disk died, no backup (INC-15)")
    event = fresh.audit_events()[-1]
    (lost_kid,) = event.payload["lost_kids"]
    with fresh.store.engine.begin() as conn:
        first_lost = conn.execute(sa.select(sa.func.min(t.checkpoints.c.seq))
                                  .where(t.checkpoints.c.kid == lost_kid)).scalar_one()
        conn.execute(t.checkpoints.update().where(t.checkpoints.c.seq == event.seq).values(kid=lost_kid))
    assert first_lost < event.seq
    with pytest.raises(AuditChainError, match=rf"^checkpoint at seq {first_lost} is forged or corrupt: unknown kid "
                                              rf"{re.escape(lost_kid)}$"):
        fresh.verify_audit()


def test_auditor_keys_without_the_lost_keys_do_not_excuse_their_checkpoints(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    # An auditor verifies with the keys they trust (audit verify --jwks). A keyring_replaced event
    # in the database must not make the checkpoints of keys missing from that set "unverifiable
    # here": the local-key bookkeeping is for the engine's own keyring, and an auditor who lacks
    # the old keys is told that a checkpoint is signed by a key they do not have.
    _, keys = signed_store
    fresh = _replaced_after_loss(make_engine, tmp_path, keys, "disk died, no backup (INC-16)")
    (lost_kid,) = fresh.audit_events()[-1].payload["lost_kids"]
    only_current = fresh.keyring.public_keys(include_expired=True)
    assert lost_kid not in only_current
    with pytest.raises(AuditChainError, match=re.escape(lost_kid)):
        fresh.verify_audit(public_keys=only_current)
    # The engine's own verify (no keys given) counts them as not verifiable here instead.
    assert fresh.verify_audit().unverifiable_checkpoints == 1


def _append_replacement(engine: Engine, keys: Path, **fields: Any) -> None:
    """A keyring_replaced event a database writer appends: linked into the chain like any event, signed by nobody."""
    with engine.store.write() as tx:
        tx.append("keyring_replaced", request_id=None, at=engine.now(),
                  payload={"reason": "forged", "key_dir": str(keys), **fields})


def test_forged_later_replacement_does_not_hide_the_genuine_one(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    # Threat: a database writer appends a keyring_replaced event of its own after a genuine one, naming a
    # key nobody vouches for. It counts for nothing; the genuine replacement, older, still does: its lost
    # checkpoint is counted as not verifiable here, not reported as forged.
    _, keys = signed_store
    fresh = _replaced_after_loss(make_engine, tmp_path, keys, "disk died, no backup (INC-17)")
    assert fresh.verify_audit().unverifiable_checkpoints == 1
    _append_replacement(fresh, keys, lost_kids=[fresh.keyring.current_kid], kid="kid-nobody-vouches-for",
                        anchor_reinitialized=False)
    report = fresh.verify_audit()
    assert report.unverifiable_checkpoints == 1


@pytest.mark.parametrize("lost_kids", [{}, {"lost_kids": 5}, {"lost_kids": {"k": 1}}, {"lost_kids": None},
                                       {"lost_kids": [["x"]]}, {"lost_kids": [{"a": 1}]}, {"kid": ["x"]}],
                         ids=["missing", "number", "object", "null", "list-in-list", "object-in-list", "kid-a-list"])
def test_replacement_event_that_names_no_lost_keys_excuses_nothing(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path, lost_kids: dict[str, Any]
) -> None:
    # A keyring_replaced event written by a database writer without "lost_kids", then checkpointed by the
    # engine in the normal course (a checkpoint signs whatever the chain holds): it declares nothing lost,
    # and verify still reads it (no crash on the missing field) and counts the genuine loss alone.
    _, keys = signed_store
    fresh = _replaced_after_loss(make_engine, tmp_path, keys, "disk died, no backup (INC-18)")
    _append_replacement(fresh, keys, **{"kid": fresh.keyring.current_kid, **lost_kids})
    fresh.checkpoint()
    assert fresh.verify_audit().unverifiable_checkpoints == 1


def test_incremental_verify_counts_only_the_lost_checkpoints_after_its_mark(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    # The lost key's checkpoint lies before the mark a full verify leaves: an incremental verify starts at
    # the mark and reads no checkpoint before it, so it has none to count (the full verify does).
    _, keys = signed_store
    fresh = _replaced_after_loss(make_engine, tmp_path, keys, "disk died, no backup (INC-19)")
    assert fresh.verify_audit().unverifiable_checkpoints == 1
    mark = fresh.anchor.verified_mark()
    assert mark is not None and mark[0] == fresh.audit_events()[-1].seq
    assert fresh.propose(AUTO).status == "granted"
    report = fresh.verify_audit(incremental=True)
    assert (report.start_seq, report.unverifiable_checkpoints) == (mark[0], 0)
    assert fresh.verify_audit().unverifiable_checkpoints == 1


def test_warrants_name_the_lost_key_when_no_checkpoint_is_left(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    # A writer with database access deletes every checkpoint row, and the keys are lost too: the
    # warrants still carry the old key id, so a fresh key is refused all the same, naming that key.
    eng, keys = signed_store
    with eng.store.read() as tx:
        (kid,) = tx.signing_kids()
    with eng.store.engine.begin() as conn:
        conn.execute(sa.delete(t.checkpoints))
        (warrant_kid,) = conn.execute(sa.select(t.warrants.c.kid)).scalars()
    assert warrant_kid == kid
    again = _restart_without_keys(make_engine, tmp_path, keys)
    with pytest.raises(StorageError, match=rf"signed by engine key\(s\) {kid}: ") as exc:
        again.propose(AUTO)
    assert exc.value.code == "keyring_missing"
    assert not (keys / STATE_FILE).exists()

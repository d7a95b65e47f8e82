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
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.keys.keyring import RECHECK_SECONDS, STATE_FILE, EngineKeyring
from hitlgate.errors import InputError, StorageError
from tests.workflow._helpers import proposal

AUTO = proposal("rotate_api_key", "dev-analytics-key")


@pytest.fixture
def signed_store(make_engine: Callable[..., Engine], tmp_path: Path) -> tuple[Engine, Path]:
    """An engine whose database holds a warrant and a checkpoint; its anchor lives outside the key directory."""
    eng = make_engine(config={"audit_anchor": tmp_path / "anchor" / "audit-anchor.jsonl"})
    assert eng.propose(AUTO).status == "granted"
    eng.checkpoint()
    return eng, tmp_path / "keys"


def test_new_engine_refuses_to_create_a_key_under_a_signed_database(
    signed_store: tuple[Engine, Path], make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    _, keys = signed_store
    shutil.rmtree(keys)
    eng = make_engine(config={"audit_anchor": tmp_path / "anchor" / "audit-anchor.jsonl"})
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
    eng = make_engine(config={"audit_anchor": tmp_path / "anchor" / "audit-anchor.jsonl"})
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
    shutil.rmtree(keys)
    eng = make_engine(config={"audit_anchor": tmp_path / "anchor" / "audit-anchor.jsonl"})
    with pytest.raises(InputError, match="a reason"):
        eng.replace_lost_keyring(" ")
    kid = eng.replace_lost_keyring("disk died, no backup (INC-7)")
    last = eng.audit_events()[-1]
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
    with pytest.raises(InputError, match="holds a keyring; nothing to replace"):
        eng.replace_lost_keyring("again")


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
    shutil.rmtree(keys)
    again = make_engine(config={"audit_anchor": tmp_path / "anchor" / "audit-anchor.jsonl"})
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
    shutil.rmtree(keys)
    fresh = make_engine(config={"audit_anchor": tmp_path / "anchor" / "audit-anchor.jsonl"})
    fresh.replace_lost_keyring("disk died, no backup (INC-8)")
    report = fresh.verify_audit()
    assert report.unverifiable_checkpoints == before

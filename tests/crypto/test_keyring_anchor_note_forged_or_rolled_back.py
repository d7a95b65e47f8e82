"""Tampering and fault: a malformed or rolled-back audit anchor note in ``keyring.json``.

The note records the anchor's path and a seq it is known to hold, so a deleted
anchor is noticed. A hand-edited note (seq zero, negative, a bool or a string,
a missing or extra field, a path that is not a string) must be refused, not
read as "no checkpoint yet"; and noting a lower seq for the same anchor must
never move the note back.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine.keys.keyring import LOCK_FILE, STATE_FILE, AnchorNote, EngineKeyring
from hitlgate.errors import StorageError

WHERE = Path("/keys/keyring.json")
MALFORMED = "^" + re.escape(f"keyring state {WHERE}: the anchor entry is malformed") + "$"


@pytest.mark.parametrize(
    "doc",
    [
        {"path": "a.jsonl", "seq": 0},
        {"path": "a.jsonl", "seq": -3},
        {"path": "a.jsonl", "seq": True},
        {"path": "a.jsonl", "seq": "5"},
        {"path": "a.jsonl"},
        {"path": "a.jsonl", "seq": 1, "extra": 1},
        {"path": 5, "seq": 1},
        ["path", "seq"],
    ],
    ids=["seq-zero", "seq-negative", "seq-bool", "seq-str", "seq-missing", "extra-field", "path-not-str", "not-dict"],
)
def test_malformed_anchor_note_is_refused(doc: Any) -> None:
    with pytest.raises(StorageError, match=MALFORMED):
        AnchorNote.from_dict(doc, WHERE)


def test_anchor_note_at_seq_one_is_accepted() -> None:
    assert AnchorNote.from_dict({"path": "a.jsonl", "seq": 1}, WHERE) == AnchorNote("a.jsonl", 1)


def test_forged_anchor_note_in_keyring_file_is_refused(tmp_path: Path) -> None:
    EngineKeyring.load_or_create(tmp_path / "keys")
    state = tmp_path / "keys" / STATE_FILE
    doc = json.loads(state.read_text(encoding="utf-8"))
    doc["anchor"] = {"path": "a.jsonl", "seq": 0}
    state.write_text(json.dumps(doc), encoding="utf-8")
    match = "^" + re.escape(f"keyring state {state}: the anchor entry is malformed") + "$"
    with pytest.raises(StorageError, match=match):
        EngineKeyring.load_or_create(tmp_path / "keys").anchor_note()


def test_noting_a_lower_seq_never_rolls_the_anchor_note_back(tmp_path: Path) -> None:
    ring = EngineKeyring.load_or_create(tmp_path / "keys")
    anchor = tmp_path / "audit-anchor.jsonl"
    ring.note_anchor(anchor, 5)
    ring.note_anchor(anchor, 3)
    assert ring.anchor_note() == AnchorNote(str(anchor), 5)
    assert EngineKeyring.load_or_create(tmp_path / "keys").anchor_note() == AnchorNote(str(anchor), 5)


def test_noting_the_same_seq_again_does_not_rewrite_the_keyring(tmp_path: Path) -> None:
    ring = EngineKeyring.load_or_create(tmp_path / "keys")
    anchor = tmp_path / "audit-anchor.jsonl"
    ring.note_anchor(anchor, 5)
    state = tmp_path / "keys" / STATE_FILE
    before = state.stat().st_ino
    ring.note_anchor(anchor, 5)
    assert state.stat().st_ino == before


def test_noting_a_new_anchor_path_moves_the_note_even_to_a_lower_seq(tmp_path: Path) -> None:
    ring = EngineKeyring.load_or_create(tmp_path / "keys")
    ring.note_anchor(tmp_path / "old.jsonl", 5)
    ring.note_anchor(tmp_path / "new.jsonl", 2)
    assert ring.anchor_note() == AnchorNote(str(tmp_path / "new.jsonl"), 2)


def test_noting_the_anchor_waits_for_a_reader_of_the_keyring(tmp_path: Path) -> None:
    """A reader (another process reading keyring.json under a shared lock) must not see the note half-made.

    Noting the anchor rewrites ``keyring.json``, so it takes the exclusive lock;
    under a shared one it could race a rotation and write back stale keys.
    """
    ring = EngineKeyring.load_or_create(tmp_path / "keys")
    anchor = tmp_path / "audit-anchor.jsonl"
    state = tmp_path / "keys" / STATE_FILE
    fd = os.open(tmp_path / "keys" / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        writer = threading.Thread(target=ring.note_anchor, args=(anchor, 5))
        writer.start()
        writer.join(0.3)
        assert writer.is_alive()
        assert "anchor" not in json.loads(state.read_text(encoding="utf-8"))
    finally:
        os.close(fd)
    writer.join(10)
    assert not writer.is_alive()
    assert json.loads(state.read_text(encoding="utf-8"))["anchor"] == {"path": str(anchor), "seq": 5}

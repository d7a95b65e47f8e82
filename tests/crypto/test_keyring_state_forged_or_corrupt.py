"""A forged or corrupt ``keyring.json`` (or engine key file) is refused, each way by its own name.

The keyring state decides which key signs warrants and checkpoints and
which public keys verify them. Someone who can write the key directory
(a restore from the wrong backup, a hand edit, a planted file) must not
get a keyring that signs with a retired key, lists a public key under
another key's id, or carries a time that cannot be read: each refusal
names the file and what is wrong with it, so the operator knows what to
restore. Every message is matched whole.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hitlgate.engine.keys.keyring import STATE_FILE, EngineKeyring, b64url_decode, b64url_encode
from hitlgate.errors import ConfigError, InputError, StorageError

Doc = dict[str, Any]


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """A key directory holding two keys: the first retired, the second current."""
    ring = EngineKeyring.load_or_create(tmp_path / "keys")
    ring.rotate()
    return ring.key_dir


def _doc(key_dir: Path) -> Doc:
    return json.loads((key_dir / STATE_FILE).read_text(encoding="utf-8"))


def _write(key_dir: Path, data: bytes) -> None:
    path = key_dir / STATE_FILE
    path.write_bytes(data)
    os.chmod(path, 0o600)


def _refusal(key_dir: Path) -> str:
    """What a fresh keyring on ``key_dir`` refuses with (it reads the state at its first use)."""
    with pytest.raises(StorageError) as exc:
        EngineKeyring.load_or_create(key_dir)
    return str(exc.value)


def _edit(change: Callable[[Doc], object]) -> Callable[[Path], None]:
    def apply(key_dir: Path) -> None:
        doc = _doc(key_dir)
        change(doc)
        _write(key_dir, json.dumps(doc).encode("utf-8"))

    return apply


def _first(doc: Doc) -> Doc:
    record: Doc = doc["keys"][0]
    return record


def _current(doc: Doc) -> Doc:
    record: Doc = next(r for r in doc["keys"] if r["kid"] == doc["current"])
    return record


# (what was done to the state file, how, the refusal)
NOT_JSON = "keyring state {path} is not valid JSON"
MALFORMED = "keyring state {path} is malformed or of an unknown version"
NO_CURRENT = "keyring state {path} names no usable current key"
WHOLE_FILE = [
    ("not-json", lambda d: _write(d, b'{"version": 1,'), NOT_JSON),
    ("not-utf8", lambda d: _write(d, b"\xff\xfe{}"), NOT_JSON),
    ("a-list", lambda d: _write(d, b"[]"), MALFORMED),
    ("another-version", _edit(lambda doc: doc.update(version=2)), MALFORMED),
    ("keys-not-a-list", _edit(lambda doc: doc.update(keys={})), MALFORMED),
    ("current-not-a-string", _edit(lambda doc: doc.update(current=1)), MALFORMED),
    ("no-current", _edit(lambda doc: doc.pop("current")), MALFORMED),
    ("a-kid-twice", _edit(lambda doc: doc["keys"].append(doc["keys"][-1])), "keyring state {path} lists a kid twice"),
    ("current-unknown", _edit(lambda doc: doc.update(current="A" * 43)), NO_CURRENT),
    ("current-retired", _edit(lambda doc: doc.update(current=_first(doc)["kid"])), NO_CURRENT),
]

ENTRY_MALFORMED = "keyring state: malformed key entry"
BAD_X = "keyring state: key {kid0} has a malformed public key"
BAD_CREATED = "keyring state: created_at of {kid0} is not an RFC 3339 UTC time"
ENTRY = [
    ("entry-not-an-object", _edit(lambda doc: doc["keys"].append("key")), ENTRY_MALFORMED),
    ("entry-with-a-field-added", _edit(lambda doc: _first(doc).update(alg="none")), ENTRY_MALFORMED),
    ("entry-with-a-field-missing", _edit(lambda doc: _first(doc).pop("retired_at")), ENTRY_MALFORMED),
    ("kid-a-path", _edit(lambda doc: _first(doc).update(kid="../" + "A" * 40)), "keyring state: malformed kid"),
    ("kid-not-a-string", _edit(lambda doc: _first(doc).update(kid=7)), "keyring state: malformed kid"),
    ("x-padded", _edit(lambda doc: _first(doc).update(x=_first(doc)["x"] + "=")), BAD_X),
    ("x-too-short", _edit(lambda doc: _first(doc).update(x=_first(doc)["x"][:-2])), BAD_X),
    ("x-not-a-string", _edit(lambda doc: _first(doc).update(x=None)), BAD_X),
    ("x-of-another-key", _edit(lambda doc: _first(doc).update(x=_current(doc)["x"])),
     "keyring state: kid {kid0} is not the thumbprint of its key"),
    ("created-at-with-an-offset",
     _edit(lambda doc: _first(doc).update(created_at="2026-11-27T09:00:00.000000+00:00")), BAD_CREATED),
    ("created-at-a-number", _edit(lambda doc: _first(doc).update(created_at=1700000000)), BAD_CREATED),
    ("created-at-not-a-date", _edit(lambda doc: _first(doc).update(created_at="2026-13-40T09:00:00.000000Z")),
     BAD_CREATED),
    ("retired-at-without-fraction", _edit(lambda doc: _first(doc).update(retired_at="2026-11-27T09:00:00Z")),
     "keyring state: retired_at of {kid0} is not an RFC 3339 UTC time"),
]


@pytest.mark.parametrize(("damage", "expected"), [(c[1], c[2]) for c in WHOLE_FILE + ENTRY],
                         ids=[c[0] for c in WHOLE_FILE + ENTRY])
def test_a_damaged_keyring_state_is_refused_by_name(
    key_dir: Path, damage: Callable[[Path], None], expected: str
) -> None:
    kid0 = _first(_doc(key_dir))["kid"]
    damage(key_dir)
    detail = expected.format(path=key_dir / STATE_FILE, kid0=kid0)
    assert _refusal(key_dir) == detail


def test_a_damaged_state_is_refused_by_a_running_keyring_too(key_dir: Path) -> None:
    # A keyring already in use re-reads a replaced state file: it refuses it rather than keep signing.
    ring = EngineKeyring.load_or_create(key_dir)
    _edit(lambda doc: doc.update(current=_first(doc)["kid"]))(key_dir)
    with pytest.raises(StorageError, match="^" + re.escape(f"keyring state {key_dir / STATE_FILE} names no usable "
                                                          "current key") + "$"):
        ring.refresh()


def test_a_group_writable_state_file_is_refused(key_dir: Path) -> None:
    path = key_dir / STATE_FILE
    os.chmod(path, 0o620)
    with pytest.raises(ConfigError, match="^" + re.escape(f"keyring state {path} is writable by group or others; "
                                                          f"run: chmod 600 {path}") + "$"):
        EngineKeyring.load_or_create(key_dir)


@pytest.mark.parametrize("mode", [0o644, 0o711], ids=lambda m: f"{m:04o}")
def test_a_state_file_others_can_only_read_is_used(key_dir: Path, mode: int) -> None:
    # The state holds public keys only: reading it is harmless, and only a write bit is refused.
    os.chmod(key_dir / STATE_FILE, mode)
    assert EngineKeyring.load_or_create(key_dir).current_kid == _doc(key_dir)["current"]


def test_a_state_file_larger_than_any_keyring_is_refused_unread(key_dir: Path) -> None:
    path = key_dir / STATE_FILE
    _write(key_dir, b" " * (64 * 1024 + 1))
    assert _refusal(key_dir) == (f"cannot read keyring state {path}: key file {path} is too large to be an "
                                 "Ed25519 key")


def test_a_state_path_that_is_a_directory_is_refused(key_dir: Path) -> None:
    path = key_dir / STATE_FILE
    path.unlink()
    path.mkdir()
    assert _refusal(key_dir) == f"cannot read keyring state {path}: key file {path} is not a regular file"


def test_a_state_path_that_is_a_symbolic_link_is_not_followed(key_dir: Path, tmp_path: Path) -> None:
    # A link planted in the key directory must not swap in a keyring kept somewhere else.
    path = key_dir / STATE_FILE
    elsewhere = tmp_path / "elsewhere.json"
    shutil.copy(path, elsewhere)
    path.unlink()
    path.symlink_to(elsewhere)
    assert _refusal(key_dir) == (f"cannot read keyring state {path}: [Errno {errno.ELOOP}] "
                                 f"{os.strerror(errno.ELOOP)}: '{path}'")


# -- the current key's private key file ------------------------------------


def test_a_private_key_file_of_another_key_is_refused(key_dir: Path) -> None:
    doc = _doc(key_dir)
    current, retired = doc["current"], _first(doc)["kid"]
    pem = key_dir / f"{current}.pem"
    other = EngineKeyring.load_or_create(key_dir.parent / "other")
    shutil.copy(other.key_dir / f"{other.current_kid}.pem", pem)
    assert retired != current
    assert _refusal(key_dir) == f"engine key {pem} does not match its kid"


def test_a_missing_private_key_file_is_named(key_dir: Path) -> None:
    pem = key_dir / f"{_doc(key_dir)['current']}.pem"
    pem.unlink()
    assert _refusal(key_dir) == f"cannot read engine key {pem}: {os.strerror(errno.ENOENT)}"


def test_a_private_key_file_that_is_not_pem_is_named(key_dir: Path) -> None:
    pem = key_dir / f"{_doc(key_dir)['current']}.pem"
    pem.write_bytes(b"not a key\n")
    with pytest.raises(InputError) as exc:
        EngineKeyring.load_or_create(key_dir)
    assert str(exc.value) == f"key file {pem} is not a PEM private key (or the password is wrong)"


# -- the key directory ------------------------------------------------------


def test_a_group_writable_key_directory_is_refused_with_its_mode(key_dir: Path) -> None:
    os.chmod(key_dir, 0o770)  # noqa: S103 - the unsafe mode is what this test must see refused.
    message = f"key directory {key_dir} is writable by group or others (mode 0770); run: chmod 700 {key_dir}"
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        EngineKeyring.load_or_create(key_dir)


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o711], ids=lambda m: f"{m:04o}")
def test_a_key_directory_others_can_only_read_is_tightened_to_0700(key_dir: Path, mode: int) -> None:
    os.chmod(key_dir, mode)
    assert EngineKeyring.load_or_create(key_dir).current_kid == _doc(key_dir)["current"]
    assert os.stat(key_dir).st_mode & 0o777 == 0o700


def test_a_key_directory_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("not a directory\n")
    with pytest.raises(ConfigError, match="^" + re.escape(f"cannot create key directory {path}: "
                                                          f"{os.strerror(errno.EEXIST)}") + "$"):
        EngineKeyring.load_or_create(path)


# -- base64url, as the keyring and the verifiers read it ---------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("QQ==", "not unpadded base64url"),
        ("Q Q", "not unpadded base64url"),
        ("Q+/Q", "not unpadded base64url"),
        (None, "not unpadded base64url"),
        ("QUJDR", "not unpadded base64url (impossible length)"),
        ("QR", "non-canonical base64url (trailing bits set)"),
        ("QUF", "non-canonical base64url (trailing bits set)"),
    ],
    ids=["padded", "space", "standard-alphabet", "not-a-string", "impossible-length", "bits-after-one-byte",
         "bits-after-two-bytes"],
)
def test_base64url_has_one_spelling_per_value(text: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        b64url_decode(text)


@pytest.mark.parametrize(("text", "value"), [("", b""), ("QQ", b"A"), ("QUE", b"AA"), ("QUFB", b"AAA"),
                                             ("-_8", b"\xfb\xff"), ("AAAX", b"\x00\x00\x17"),
                                             ("AABX", b"\x00\x00W")])
def test_canonical_base64url_decodes_and_encodes_back(text: str, value: bytes) -> None:
    # Only the padding is stripped when encoding: an encoding that ends in a letter keeps it.
    assert b64url_decode(text) == value
    assert b64url_encode(value) == text


def test_a_private_key_file_that_is_a_symbolic_link_is_not_followed(key_dir: Path, tmp_path: Path) -> None:
    # A link planted at the current key's path must not make the engine sign with a key kept elsewhere.
    pem = key_dir / f"{_doc(key_dir)['current']}.pem"
    elsewhere = tmp_path / "elsewhere.pem"
    shutil.move(pem, elsewhere)
    pem.symlink_to(elsewhere)
    assert _refusal(key_dir) == f"cannot read engine key {pem}: {os.strerror(errno.ELOOP)}"


def test_a_key_directory_that_cannot_be_tightened_is_refused(
    key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory others may read but whose mode this process cannot change (another owner, a read-only
    # mount): the engine does not go on with keys others can list.
    from hitlgate.engine.keys import keyring as keyring_mod

    def chmod(path: object, mode: int) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(path))

    os.chmod(key_dir, 0o750)  # noqa: S103 - a directory others may read, which the engine tightens.
    monkeypatch.setattr(keyring_mod.os, "chmod", chmod)
    message = f"key directory {key_dir} must be mode 0700: {os.strerror(errno.EPERM)}"
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        EngineKeyring.load_or_create(key_dir)


def test_a_huge_key_file_is_refused_after_reading_one_byte_past_the_limit(tmp_path: Path) -> None:
    # A key path pointed at a huge file (a disk image, a log) must not be read into memory to be refused.
    from hitlgate.engine.keys.keyring import load_approver_key

    huge = tmp_path / "huge.pem"
    with open(huge, "wb") as fh:
        fh.truncate(256 << 20)  # Sparse: 256 MiB of zeros without writing them.
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="^" + re.escape(f"key file {huge} is too large to be an Ed25519 key")
                                             + "$"):
            load_approver_key(huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak} bytes allocated to refuse it"


def test_a_state_file_of_exactly_64_kib_is_read(key_dir: Path) -> None:
    # The limit is a size a keyring reaches only after thousands of rotations: 64 KiB itself is allowed.
    path = key_dir / STATE_FILE
    text = path.read_bytes().rstrip()
    _write(key_dir, text + b" " * (64 * 1024 - len(text)))
    assert path.stat().st_size == 64 * 1024
    assert EngineKeyring.load_or_create(key_dir).current_kid == _doc(key_dir)["current"]


def test_the_anchor_note_of_a_deleted_keyring_is_none_and_no_keyring_is_made(key_dir: Path) -> None:
    # Asking what the keyring records about the anchor never creates a keyring, even in a process that had
    # loaded the one now deleted.
    ring = EngineKeyring.load_or_create(key_dir)
    (key_dir / STATE_FILE).unlink()
    assert ring.anchor_note() is None
    assert not (key_dir / STATE_FILE).exists()


def test_the_anchor_note_is_read_fresh_not_from_the_recheck_window(key_dir: Path, tmp_path: Path) -> None:
    # Another process noting a newer anchor seq is seen at once: the check of a missing anchor must not
    # compare with what this process read up to RECHECK_SECONDS ago.
    reader = EngineKeyring.load_or_create(key_dir)
    assert reader.anchor_note() is None
    EngineKeyring.load_or_create(key_dir).note_anchor(tmp_path / "anchor.jsonl", 5)
    note = reader.anchor_note()
    assert note is not None and (note.path, note.seq) == (str(tmp_path / "anchor.jsonl"), 5)


@pytest.mark.parametrize("seconds", [-1, True, 1.5, "3600", None])
def test_a_retirement_grace_that_is_not_a_whole_number_of_seconds_is_refused(tmp_path: Path, seconds: Any) -> None:
    with pytest.raises(ConfigError, match="^retire_after_seconds must be a non-negative integer$"):
        EngineKeyring(tmp_path / "keys", retire_after_seconds=seconds)
    assert not (tmp_path / "keys").exists()  # Refused before anything is made.


def test_a_retirement_grace_of_zero_retires_a_key_at_once(tmp_path: Path) -> None:
    ring = EngineKeyring.load_or_create(tmp_path / "keys", retire_after_seconds=0)
    old = ring.current_kid
    ring.rotate()
    assert ring.retire_after.total_seconds() == 0
    assert ring.public_key(old, datetime.now(UTC) + timedelta(seconds=1)) is None


def test_a_state_path_the_file_system_cannot_stat_is_named(key_dir: Path) -> None:
    path = key_dir / STATE_FILE
    path.unlink()
    path.symlink_to(path)  # A loop: stat() fails with ELOOP.
    assert _refusal(key_dir) == f"cannot stat {path}: {os.strerror(errno.ELOOP)}"

"""Ed25519 keys: approvers' personal keys and the engine's rotating keyring.

Approver keys
    :func:`generate_approver_key` writes a new PKCS#8 PEM private key with mode
    0600 (never overwriting an existing file) and returns the public key in
    the inventory's text form (``ed25519:<base64url>``), which an architect
    pastes into ``policies/data/*.yaml``. :func:`load_approver_key` reads it
    back and refuses anything that is not an Ed25519 private key.

Engine keyring
    :class:`EngineKeyring` holds the keys that sign warrants and audit
    checkpoints. On disk, ``key_dir`` (mode 0700) contains:

    * ``<kid>.pem``: the private key of the *current* key (mode 0600). The
      private half of a key is deleted when the key is rotated out, because
      nothing may sign with it again; only its public half is kept.
    * ``keyring.json``: which key is current and the public half, creation
      time and retirement time of every key the keyring ever had (mode 0600,
      replaced atomically), and, once the engine has anchored a checkpoint,
      ``anchor``: the audit anchor's path and a seq it is known to hold
      (:meth:`EngineKeyring.note_anchor`), so a deleted anchor is noticed
      even when every checkpoint row was deleted from the database too.
    * ``.lock``: an ``flock`` lock file. Every read and write of the state
      happens under it, so two processes that race to create the first key
      on an empty directory end up with exactly one key, and a process never
      reads a state whose private key file a concurrent rotation deleted.

    A key's ``kid`` is its RFC 7638 JWK thumbprint. The JWKS lists the
    current key plus retired keys still inside their grace window
    (``retire_after_seconds``); the grace window must be at least the longest
    warrant lifetime, or warrants signed just before a rotation are refused
    (which fails closed, but annoys). Keys past the window leave the JWKS but
    stay in the key *history* (``include_expired=True``), which is what an
    auditor needs to check old audit checkpoints.

    The keyring notices rotations made by other processes: it re-reads the
    state when ``keyring.json`` changed on disk, checking with one ``stat`` at
    most every :data:`RECHECK_SECONDS` and whenever a verifier asks for an
    unknown ``kid``; :meth:`EngineKeyring.refresh` forces a re-read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from hitlgate.engine._canonical import dumps as canonical_dumps
from hitlgate.engine.decide.inventory import encode_public_key
from hitlgate.errors import ConfigError, InputError, StorageError

log = logging.getLogger(__name__)

#: File names inside an engine key directory.
STATE_FILE = "keyring.json"
LOCK_FILE = ".lock"
STATE_VERSION = 1
#: How often (seconds) a loaded keyring re-checks the disk for rotations.
RECHECK_SECONDS = 1.0

#: A key file larger than this is not a PEM Ed25519 key; refuse to read it.
_MAX_KEY_FILE_BYTES = 64 * 1024

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_TO_STD_ALPHABET = bytes.maketrans(b"-_", b"+/")
_PADDING = {0: b"", 2: b"==", 3: b"="}
#: With 2 (3) characters in the last quantum, the last character carries 4
#: (2) unused low bits; canonical encodings leave them zero, which only these
#: characters do.
_CANON_LAST_2 = frozenset("AQgw")
_CANON_LAST_3 = frozenset("AEIMQUYcgkosw048")
#: A kid is a base64url SHA-256 thumbprint: exactly 43 characters. Checking
#: it before using it in a file name rules out path traversal through a
#: tampered state file.
_KID_RE = re.compile(r"[A-Za-z0-9_-]{43}")


# --------------------------------------------------------------------------
# base64url and JWK helpers


def retire_after_for(warrant_ttl_seconds: int) -> int:
    """How long a retired engine key stays trusted: two warrant lifetimes, and never under an hour.

    A rotation then never strands a warrant issued just before it.
    """
    return max(3600, 2 * warrant_ttl_seconds)


def b64url_encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url (RFC 7515 section 2)."""
    unpadded = base64.urlsafe_b64encode(data).rstrip(b"=")
    # The codec's name is case-insensitive: its mutants are equivalent.
    return unpadded.decode("ascii")  # pragma: no mutate


def b64url_decode(text: str) -> bytes:
    """Strictly decode unpadded base64url; raise ``ValueError`` on anything else.

    The standard library decoder silently skips characters outside the
    alphabet and accepts non-zero trailing bits; this one refuses padding,
    foreign characters, impossible lengths and non-canonical encodings (set
    bits after the last full byte), so a value has exactly one accepted
    spelling. It sits on the warrant verification hot path, hence the
    table-driven last-character check instead of re-encoding.
    """
    if not isinstance(text, str) or _B64URL_RE.fullmatch(text) is None:
        raise ValueError("not unpadded base64url")
    tail = len(text) % 4
    if tail == 1:
        raise ValueError("not unpadded base64url (impossible length)")
    if (tail == 2 and text[-1] not in _CANON_LAST_2) or (tail == 3 and text[-1] not in _CANON_LAST_3):
        raise ValueError("non-canonical base64url (trailing bits set)")
    # The codec's name is case-insensitive: its mutants are equivalent.
    raw = text.encode("ascii")  # pragma: no mutate
    return binascii.a2b_base64(raw.translate(_TO_STD_ALPHABET) + _PADDING[tail])


def public_raw(public_key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def jwk_thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 public key.

    The RFC hashes the required members in lexicographic order without
    whitespace, which is exactly RFC 8785 canonical JSON of those members.
    """
    members = {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(public_raw(public_key))}
    return b64url_encode(hashlib.sha256(canonical_dumps(members)).digest())


def public_jwk(public_key: Ed25519PublicKey, kid: str | None = None) -> dict[str, str]:
    """The public JWK of an Ed25519 key, as published in the JWKS."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url_encode(public_raw(public_key)),
        "kid": kid or jwk_thumbprint(public_key),
        "alg": "EdDSA",
        "use": "sig",
    }


# --------------------------------------------------------------------------
# Approver keys


def _private_pem(key: Ed25519PrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 and write ``data``; never overwrite or follow a link."""
    # Equivalent mutants: the path is fresh (a random temporary name, or a new key's thumbprint), so
    # O_EXCL | O_NOFOLLOW refuse only a file or link planted there in a race, which no test can aim
    # at; and the fchmod below sets the mode again before a byte is written.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)  # pragma: no mutate
    try:
        # The umask can only remove bits, but an explicit fchmod documents
        # and guarantees the final mode.
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)


def generate_approver_key(out: Path, *, password: bytes | None = None) -> str:
    """Create a new approver key at ``out`` (PKCS#8 PEM, mode 0600).

    Returns the public key in inventory form (``ed25519:<base64url>``).
    Refuses to overwrite an existing file or to follow a symbolic link
    (:class:`InputError`); creates missing parent directories with mode 0700.
    """
    from hitlgate.engine._files import write_file

    key = Ed25519PrivateKey.generate()
    # Never overwrite (write_file refuses unless told to overwrite): silently
    # replacing someone's signing key would orphan their registered key.
    # Missing parent folders are created with 0700.
    write_file(
        out, _private_pem(key, password), secret=True, what="key file",
        if_exists="keys are never overwritten: choose another path, or delete the old key deliberately first",
    )
    return encode_public_key(public_raw(key.public_key()))


def _read_key_file(path: Path, *, follow_symlinks: bool) -> tuple[bytes, os.stat_result]:
    flags = os.O_RDONLY | (0 if follow_symlinks else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"key file {path} is not a regular file")
        with os.fdopen(os.dup(fd), "rb") as fh:
            # One byte past the limit tells a file over it; reading a byte more would change nothing but
            # the memory (equivalent), reading it all is what the huge-file test refuses.
            data = fh.read(_MAX_KEY_FILE_BYTES + 1)  # pragma: no mutate
    finally:
        os.close(fd)
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise InputError(f"key file {path} is too large to be an Ed25519 key")
    return data, st


def _parse_private_pem(data: bytes, path: Path, password: bytes | None) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:
        # cryptography raises TypeError when a password is missing or
        # superfluous.
        raise InputError(f"key file {path}: {exc}") from exc
    except ValueError as exc:
        raise InputError(f"key file {path} is not a PEM private key (or the password is wrong)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"key file {path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_approver_key(path: Path, *, password: bytes | None = None) -> Ed25519PrivateKey:
    """Load an approver's Ed25519 private key from a PEM file.

    Raises :class:`InputError` when the file is missing, unreadable or not an
    Ed25519 private key. A key file readable by group or others is still
    loaded (the approver may have reasons), but a warning is logged because
    anyone who can read it can approve in that person's name.
    """
    path = Path(path)
    try:
        data, st = _read_key_file(path, follow_symlinks=True)
    except FileNotFoundError as exc:
        raise InputError(f"key file {path} does not exist", code="unreadable") from exc
    except OSError as exc:
        raise InputError(f"cannot read key file {path}: {exc.strerror}", code="unreadable") from exc
    if st.st_mode & 0o077:
        log.warning(
            "key file %s is accessible by group or others (mode %04o); run: chmod 600 %s",
            path,
            stat.S_IMODE(st.st_mode),
            path,
        )
    return _parse_private_pem(data, path, password)


# --------------------------------------------------------------------------
# Engine keyring


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() != timedelta(0):
        raise InputError("times must be timezone-aware UTC datetimes")
    return now


def _fmt_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: Any, what: str) -> datetime:
    if not isinstance(text, str) or not text.endswith("Z"):
        raise StorageError(f"keyring state: {what} is not an RFC 3339 UTC time")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise StorageError(f"keyring state: {what} is not an RFC 3339 UTC time") from exc


@dataclass(frozen=True)
class KeyRecord:
    """One engine key as recorded in the keyring state (public half only)."""

    kid: str
    public_key: Ed25519PublicKey
    created_at: datetime
    retired_at: datetime | None = None

    def __post_init__(self) -> None:
        if jwk_thumbprint(self.public_key) != self.kid:
            raise StorageError(f"keyring state: kid {self.kid} is not the thumbprint of its key")

    def in_grace(self, now: datetime, retire_after: timedelta) -> bool:
        """Whether the key may still verify signatures at ``now``."""
        return self.retired_at is None or now < self.retired_at + retire_after

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored in ``keyring.json``."""
        return {
            "kid": self.kid,
            "x": b64url_encode(public_raw(self.public_key)),
            "created_at": _fmt_time(self.created_at),
            "retired_at": None if self.retired_at is None else _fmt_time(self.retired_at),
        }

    @classmethod
    def from_dict(cls, rec: Any) -> KeyRecord:
        """Parse one entry of ``keyring.json``."""
        if not isinstance(rec, dict) or set(rec) != {"kid", "x", "created_at", "retired_at"}:
            raise StorageError("keyring state: malformed key entry")
        kid = rec["kid"]
        if not isinstance(kid, str) or _KID_RE.fullmatch(kid) is None:
            raise StorageError("keyring state: malformed kid")
        try:
            public_key = Ed25519PublicKey.from_public_bytes(b64url_decode(rec["x"]))
        except (ValueError, TypeError) as exc:
            raise StorageError(f"keyring state: key {kid} has a malformed public key") from exc
        retired = rec["retired_at"]
        return cls(
            kid=kid,
            public_key=public_key,
            created_at=_parse_time(rec["created_at"], f"created_at of {kid}"),
            retired_at=None if retired is None else _parse_time(retired, f"retired_at of {kid}"),
        )


@dataclass(frozen=True)
class _State:
    current: str
    keys: tuple[KeyRecord, ...]
    private_key: Ed25519PrivateKey
    file_id: tuple[int, int, int]
    #: The audit anchor this keyring's engine writes, and a seq it is known to reach (see :meth:`note_anchor`).
    anchor: AnchorNote | None = None


@dataclass(frozen=True)
class AnchorNote:
    """What ``keyring.json`` records about the audit anchor: its path and a seq it reached."""

    path: str
    seq: int

    @classmethod
    def from_dict(cls, doc: Any, where: Path) -> AnchorNote:
        """Parse the ``anchor`` entry of ``keyring.json``."""
        if (not isinstance(doc, dict) or set(doc) != {"path", "seq"} or not isinstance(doc["path"], str)
                or type(doc["seq"]) is not int or doc["seq"] < 1):
            raise StorageError(f"keyring state {where}: the anchor entry is malformed")
        return cls(doc["path"], doc["seq"])


class EngineKeyring:
    """The engine's signing keys, stored in ``key_dir`` and rotated in place.

    Construct it with :meth:`load_or_create`; the plain constructor loads
    (or creates) lazily on first use.
    """

    def __init__(
        self,
        key_dir: Path,
        *,
        retire_after_seconds: int = 3600,
        before_create: Callable[[Path], None] | None = None,
    ) -> None:
        """Bind to ``key_dir``; nothing is read until first use.

        ``before_create(key_dir)`` is called, under the keyring's exclusive
        lock, before a first key is created in an empty directory; it raises
        to refuse. The engine uses it so that a deleted key directory is
        reported, not silently replaced by a fresh key while its database
        holds checkpoints and warrants signed by the old ones.
        """
        if type(retire_after_seconds) is not int or retire_after_seconds < 0:  # A bool is not a number of seconds.
            raise ConfigError("retire_after_seconds must be a non-negative integer")
        self.key_dir = Path(key_dir)
        self._before_create = before_create
        self.retire_after = timedelta(seconds=retire_after_seconds)
        self._state: _State | None = None
        self._records: dict[str, KeyRecord] = {}
        self._checked_at = 0.0

    @classmethod
    def load_or_create(
        cls,
        key_dir: Path,
        *,
        retire_after_seconds: int = 3600,
    ) -> EngineKeyring:
        """Open the keyring in ``key_dir``, creating the directory and first key if needed."""
        ring = cls(key_dir, retire_after_seconds=retire_after_seconds)
        ring._ensure()
        return ring

    # -- locking and state I/O ------------------------------------------

    def _prepare_dir(self) -> None:
        try:
            self.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = self.key_dir.stat()
        except OSError as exc:
            raise ConfigError(f"cannot create key directory {self.key_dir}: {exc.strerror}") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"key directory {self.key_dir} is not a directory")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022:
            # Someone else could plant or swap key files: refuse outright.
            raise ConfigError(
                f"key directory {self.key_dir} is writable by group or others (mode {mode:04o}); "
                f"run: chmod 700 {self.key_dir}"
            )
        if mode & 0o077:
            log.warning("key directory %s had mode %04o; tightening to 0700", self.key_dir, mode)
            try:
                os.chmod(self.key_dir, 0o700)
            except OSError as exc:
                raise ConfigError(f"key directory {self.key_dir} must be mode 0700: {exc.strerror}") from exc

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        self._prepare_dir()
        path = self.key_dir / LOCK_FILE
        try:
            fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES):
                raise ConfigError(f"cannot open lock file {path}: {exc.strerror}") from exc
            fd = self._read_only_lock(path, exc, exclusive)
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            # Closing the descriptor releases the flock.
            if fd is not None:
                os.close(fd)

    def _read_only_lock(self, path: Path, refused: OSError, exclusive: bool) -> int | None:
        """The lock of a key directory this process may not write (an auditor's copy, a read-only mount).

        Reading keys needs only the shared lock, which a descriptor opened
        read-only can take; on a read-only file system without a lock file
        nobody can change the keys, so a reader goes on without one. A
        change of keys there is refused as the read-only state store refuses
        a write (``read_only``, exit 1), naming the directory.
        """
        why = refused.strerror or str(refused)
        if exclusive:
            raise StorageError(
                f"the key directory {self.key_dir} is not writable ({why}); this command creates or changes "
                "engine keys. Run it where the directory is writable (reading commands such as `audit verify` "
                "work on a read-only copy once its keys exist)",
                code="read_only",
            ) from refused
        try:
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            if refused.errno == errno.EROFS:
                return None
            raise StorageError(f"cannot take the key directory's lock {path}: {why}", code="read_only") from refused
        except OSError as exc:
            raise StorageError(f"cannot open lock file {path}: {exc.strerror or exc}") from exc

    def _state_path(self) -> Path:
        return self.key_dir / STATE_FILE

    def _file_id(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._state_path())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat {self._state_path()}: {exc.strerror}") from exc
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load_private(self, kid: str) -> Ed25519PrivateKey:
        path = self.key_dir / f"{kid}.pem"
        try:
            data, st = _read_key_file(path, follow_symlinks=False)
        except OSError as exc:
            raise StorageError(f"cannot read engine key {path}: {exc.strerror}") from exc
        if st.st_mode & 0o077:
            raise ConfigError(
                f"engine key {path} is accessible by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
            )
        key = _parse_private_pem(data, path, None)
        if jwk_thumbprint(key.public_key()) != kid:
            raise StorageError(f"engine key {path} does not match its kid")
        return key

    def _read_state(self) -> _State | None:
        """Read the state; the caller holds the lock."""
        file_id = self._file_id()
        if file_id is None:
            return None
        path = self._state_path()
        try:
            data, st = _read_key_file(path, follow_symlinks=False)
        except (OSError, InputError) as exc:
            raise StorageError(f"cannot read keyring state {path}: {exc}") from exc
        if st.st_mode & 0o022:
            raise ConfigError(f"keyring state {path} is writable by group or others; run: chmod 600 {path}")
        try:
            doc = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StorageError(f"keyring state {path} is not valid JSON") from exc
        if (
            not isinstance(doc, dict)
            or doc.get("version") != STATE_VERSION
            or not isinstance(doc.get("keys"), list)
            or not isinstance(doc.get("current"), str)
        ):
            raise StorageError(f"keyring state {path} is malformed or of an unknown version")
        records = tuple(KeyRecord.from_dict(r) for r in doc["keys"])
        by_kid = {r.kid: r for r in records}
        if len(by_kid) != len(records):
            raise StorageError(f"keyring state {path} lists a kid twice")
        current = by_kid.get(doc["current"])
        if current is None or current.retired_at is not None:
            raise StorageError(f"keyring state {path} names no usable current key")
        anchor = None if doc.get("anchor") is None else AnchorNote.from_dict(doc["anchor"], path)
        return _State(current.kid, records, self._load_private(current.kid), (st.st_ino, st.st_mtime_ns, st.st_size),
                      anchor)

    def _write_state(self, current: str, records: tuple[KeyRecord, ...], anchor: AnchorNote | None = None) -> None:
        """Atomically replace the state file; the caller holds the exclusive lock."""
        doc: dict[str, Any] = {"version": STATE_VERSION, "current": current, "keys": [r.to_dict() for r in records]}
        if anchor is not None:
            doc["anchor"] = {"path": anchor.path, "seq": anchor.seq}
        # The temporary name only has to be unused (_write_new_file refuses an existing one), and the
        # indentation is for a human reading the file: neither can change what is stored.
        tmp = self.key_dir / f".{STATE_FILE}.{os.getpid()}.{secrets.token_hex(4)}"  # pragma: no mutate
        try:
            _write_new_file(tmp, json.dumps(doc, indent=2).encode("utf-8") + b"\n")  # pragma: no mutate
        except OSError as exc:
            raise StorageError(f"cannot write keyring state {tmp}: {exc.strerror or exc}") from exc
        try:
            os.replace(tmp, self._state_path())
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StorageError(f"cannot replace keyring state {self._state_path()}: {exc.strerror or exc}") from exc
        except BaseException:
            # Ctrl-C before the rename: the old state stays whole, and no stray copy is left in the key directory.
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        try:
            dfd = os.open(self.key_dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise StorageError(f"cannot sync key directory {self.key_dir}: {exc.strerror or exc}") from exc

    def _write_state_or_discard(
        self, fresh: KeyRecord, current: str, records: tuple[KeyRecord, ...], anchor: AnchorNote | None = None
    ) -> None:
        """Write the state naming the new key ``fresh``; if that fails, delete its orphaned private key file."""
        try:
            self._write_state(current, records, anchor)
        except BaseException:
            # A failed write, or Ctrl-C before the state named it: the new key would be an orphan.
            with contextlib.suppress(OSError):
                (self.key_dir / f"{fresh.kid}.pem").unlink()
            raise

    def _new_key(self, now: datetime) -> KeyRecord:
        key = Ed25519PrivateKey.generate()
        record = KeyRecord(jwk_thumbprint(key.public_key()), key.public_key(), now)
        path = self.key_dir / f"{record.kid}.pem"
        try:
            _write_new_file(path, _private_pem(key))
        except OSError as exc:
            raise StorageError(f"cannot create engine key {path}: {exc.strerror or exc}") from exc
        return record

    def _install(self, state: _State) -> _State:
        self._state = state
        self._checked_at = time.monotonic()
        self._records = {r.kid: r for r in state.keys}
        return state

    def _ensure(self, *, force_check: bool = False) -> _State:
        state = self._state
        if state is not None:
            # Checking for rotations by other processes costs a stat(); on
            # the hot path do it at most every RECHECK_SECONDS. A stale view
            # is harmless for that long: a key another process just retired
            # is still inside its grace window.
            tick = time.monotonic()
            # `<=` would only move the re-check by one clock tick: equivalent.
            if not force_check and tick - self._checked_at < RECHECK_SECONDS:  # pragma: no mutate
                return state
            if self._file_id() == state.file_id:
                self._checked_at = tick
                return state
        # Equivalent mutants: reading under the exclusive lock would only make readers wait for each other,
        # and skipping this read (None) only sends every caller to the exclusive branch, which reads again.
        with self._locked(exclusive=False):  # pragma: no mutate
            loaded = self._read_state()  # pragma: no mutate
        if loaded is None:
            with self._locked(exclusive=True):
                # Another process may have created the first key while this
                # one waited for the exclusive lock: re-check under it.
                loaded = self._read_state()
                if loaded is None:
                    if self._before_create is not None:
                        self._before_create(self.key_dir)
                    record = self._new_key(_utc(None))
                    self._write_state_or_discard(record, record.kid, (record,))
                    loaded = self._read_state()
                    if loaded is None:  # pragma: no cover - the write just happened.
                        raise StorageError(f"keyring state in {self.key_dir} vanished after creation")
        return self._install(loaded)

    def refresh(self) -> None:
        """Re-read the state from disk (picks up rotations by other processes)."""
        self._state = None
        self._ensure()

    # -- public API ------------------------------------------------------

    @property
    def current_kid(self) -> str:
        """The kid of the key that signs now."""
        return self._ensure().current

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        """``(kid, private_key)`` of the current key."""
        state = self._ensure()
        return state.current, state.private_key

    def records(self) -> tuple[KeyRecord, ...]:
        """Every key the keyring ever had (public halves), oldest first."""
        return self._ensure().keys

    def public_key(self, kid: str, now: datetime | None = None) -> Ed25519PublicKey | None:
        """The public key for ``kid`` if it may verify at ``now``; else None.

        This is the verifier's fast path: a dictionary lookup, plus a
        ``stat`` at most every :data:`RECHECK_SECONDS` (and on an unknown
        kid) to notice rotations made by other processes.
        """
        self._ensure()
        # Equivalent mutant (record = None): it only forces the re-read below, which finds the same record.
        record = self._records.get(kid)  # pragma: no mutate
        if record is None:
            # A kid we do not know may be a key another process just created.
            self._ensure(force_check=True)
            record = self._records.get(kid)
        if record is None:
            return None
        return record.public_key if record.in_grace(_utc(now), self.retire_after) else None

    def public_keys(self, now: datetime | None = None, *, include_expired: bool = False) -> dict[str, Ed25519PublicKey]:
        """Current key plus retired keys still in their grace window, by kid.

        ``include_expired=True`` returns the whole history instead, for
        checking old audit checkpoints; never use it to verify warrants.
        """
        at = _utc(now)
        return {
            r.kid: r.public_key for r in self._ensure().keys if include_expired or r.in_grace(at, self.retire_after)
        }

    def jwks(self, now: datetime | None = None, *, include_expired: bool = False) -> dict[str, Any]:
        """The public JWKS (see :meth:`public_keys` for which keys it lists)."""
        keys = self.public_keys(now, include_expired=include_expired)
        # Passing the kid is equivalent to letting public_jwk compute it: a
        # KeyRecord refuses a kid that is not its key's thumbprint.
        return {"keys": [public_jwk(k, kid) for kid, k in keys.items()]}  # pragma: no mutate

    def anchor_note(self) -> AnchorNote | None:
        """What ``keyring.json`` records about the audit anchor; None without a keyring (never creates one)."""
        # Whether this process loaded a keyring before does not matter: one deleted since is none (reading
        # on would create a fresh keyring, which this must never do).
        if self._file_id() is None:
            return None
        return self._ensure(force_check=True).anchor

    def note_anchor(self, path: Path, seq: int) -> None:
        """Record in ``keyring.json`` (atomically) that the audit anchor at ``path`` holds a checkpoint at ``seq``.

        The anchor lives outside the database; this note lives outside it
        too, so deleting the anchor *and* every checkpoint row does not make
        a missing anchor look like a fresh installation. Only ever moves
        ``seq`` forward (or to a new path).
        """
        with self._locked(exclusive=True):
            state = self._read_state()
            if state is None:
                raise StorageError(f"no keyring in {self.key_dir} to record the audit anchor in")
            if state.anchor is not None and state.anchor.path == str(path) and state.anchor.seq >= seq:
                return
            self._write_state(state.current, state.keys, AnchorNote(str(path), seq))
            loaded = self._read_state()
        if loaded is not None:
            self._install(loaded)

    def rotate(self, now: datetime | None = None) -> str:
        """Make a new current key; retire the old one at ``now``; return the new kid.

        The retired key's private file is deleted. Its public half stays in
        the JWKS until ``retire_after_seconds`` after ``now``.
        """
        at = _utc(now)
        with self._locked(exclusive=True):
            # Rotate what is on disk now, not a possibly stale copy.
            state = self._read_state()
            if state is None:
                raise StorageError(f"no keyring in {self.key_dir} to rotate")
            fresh = self._new_key(at)
            records = tuple(
                KeyRecord(r.kid, r.public_key, r.created_at, at) if r.kid == state.current else r for r in state.keys
            ) + (fresh,)
            self._write_state_or_discard(fresh, fresh.kid, records, state.anchor)
            try:
                (self.key_dir / f"{state.current}.pem").unlink()
            except OSError as exc:
                # Only whether an operator is told: the rotation stands either way.
                if exc.errno != errno.ENOENT:  # pragma: no mutate
                    log.warning("could not delete retired engine key %s: %s", state.current, exc.strerror)
            loaded = self._read_state()
        if loaded is None:  # pragma: no cover - the write just happened.
            raise StorageError(f"keyring state in {self.key_dir} vanished after rotation")  # pragma: no mutate
        self._install(loaded)
        log.info("rotated engine key: %s retired, %s current", state.current, fresh.kid)
        return fresh.kid

    @staticmethod
    def from_jwks(jwks: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
        """Parse a JWKS into ``{kid: public_key}`` for verifiers without the keyring.

        Strict: every key must be an Ed25519 ``OKP`` key for ``EdDSA``
        signatures whose ``kid`` is its RFC 7638 thumbprint, and a JWKS that
        carries private key material (``d``) is refused rather than used.
        """
        keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(keys, list) or not keys:
            raise InputError("JWKS must be an object with a non-empty 'keys' list")
        out: dict[str, Ed25519PublicKey] = {}
        for i, jwk in enumerate(keys):
            where = f"JWKS keys[{i}]"
            if not isinstance(jwk, Mapping):
                raise InputError(f"{where} is not an object")
            if "d" in jwk:
                raise InputError(f"{where} contains a private key ('d'); never publish it")
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                raise InputError(f"{where} is not an Ed25519 OKP key")
            if jwk.get("alg", "EdDSA") != "EdDSA" or jwk.get("use", "sig") != "sig":
                raise InputError(f"{where} is not an EdDSA signature key")
            try:
                # A missing "x" and any other default fail the same way (no
                # 32-byte key decodes from them), so the default is not mutated.
                public_key = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk.get("x", "")))  # pragma: no mutate
            except (ValueError, TypeError) as exc:
                raise InputError(f"{where} has a malformed 'x'") from exc
            kid = jwk.get("kid")
            if kid != jwk_thumbprint(public_key):
                raise InputError(f"{where}: kid {kid!r} is not the RFC 7638 thumbprint of the key")
            if kid in out:
                raise InputError(f"{where}: kid {kid} is listed twice")
            out[kid] = public_key
        return out

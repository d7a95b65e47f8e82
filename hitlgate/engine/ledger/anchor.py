"""The audit anchor: every signed checkpoint, also kept outside the database.

Checkpoints stored next to the events they sign do not survive an attacker
with database write access: they delete every checkpoint row, rewrite the
chain with recomputed hashes, and the store agrees with itself again. So the
engine also appends every checkpoint it signs to an append-only JSON Lines
file in another trust domain, by default ``<key_dir>/audit-anchor.jsonl``
(whoever can write the engine's key directory can sign checkpoints anyway;
whoever can only write the database cannot touch it). Config key
``audit_anchor`` moves it.

One line per checkpoint, in the same shape as a checkpoint record of an
audit export (``{"record": "checkpoint", "seq", "head_hash", "at", "kid",
"token"}``), so an anchor and an export can be handed to ``hitlgate audit
verify --anchor`` alike. Only the signed ``token`` is trusted; the other
fields are there for people and must agree with what it signs.

The file is created mode 0600, written with ``O_APPEND`` under an ``flock``
and fsynced; a failure raises :class:`~hitlgate.errors.StorageError`.
Appends are all-or-nothing: a write that fails part-way (a full disk) is
truncated back to the length the file had before it, so no partial line is
left behind. A crash in the middle of a write can still leave a final line
without its newline; :meth:`AuditAnchor.read` ignores such a torn last line
(logging a warning) and the next append cuts it off before writing, so
the file heals instead of failing every later ``audit verify``. A line that
ends with its newline is complete, and any malformed complete line is an
error, as before.

Warrant issue and consumption each sign a checkpoint of their own event,
appended here before success is reported, and :meth:`AuditAnchor.last`
reads only the file's last line, so the engine can check on every guard
call and every write that the database is not behind the anchor (see
:meth:`hitlgate.engine.ledger.auditlog.AuditLog.require_anchored_head`). The
keyring's ``keyring.json`` records the anchor's path and a seq it reached
(on its first line and at periodic or on-demand checkpoints), so an anchor
deleted together with every checkpoint row is still reported.

A missing anchor while the database holds checkpoints is an alarm, not
something to paper over: the engine refuses to write until an operator
runs ``hitlgate audit anchor --reinit --reason TEXT`` (an audit event of its
own), see :meth:`hitlgate.engine.ledger.auditlog.AuditLog.reinit_anchor`. The
engine appends a checkpoint only after the transaction that stored it has
committed (and checks beforehand that the file can be opened, so a
misconfigured anchor rolls the change back): the anchor therefore never
holds a checkpoint of an event the database never committed, which would
look exactly like a rewrite.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from hitlgate.engine.config import ANCHOR_FILE
from hitlgate.engine.ledger.audit import Checkpoint, read_export
from hitlgate.errors import AuditChainError, InputError, StorageError, ValidationError

__all__ = ["ANCHOR_FILE", "AuditAnchor", "anchor_line", "load_external_anchor", "read_checkpoint_file"]

log = logging.getLogger(__name__)

#: Appended to the anchor's file name for the verified mark (see :meth:`AuditAnchor.verified_mark`).
VERIFIED_SUFFIX = ".verified"

#: How far from the end :meth:`AuditAnchor.last` reads; a line is a few hundred bytes.
_TAIL_BYTES = 64 * 1024

#: How many bytes before the end of what :meth:`AuditAnchor.last` read it keeps, to see the next time that the
#: file still holds them (an anchor line is about 640 bytes).
_KEEP_BYTES = 2048

#: A whole anchor line as :func:`anchor_line` writes it (keys sorted), its seq captured: what
#: :meth:`AuditAnchor.start_of` reads without parsing. A line of any other shape stops the scan.
_SEQ_OF_LINE = re.compile(
    rb'\{"at": "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z", '
    rb'"head_hash": "sha256:[0-9a-f]{64}", "kid": "[A-Za-z0-9_.-]{1,200}", "record": "checkpoint", '
    rb'"seq": ([1-9][0-9]{0,17}), "token": "[A-Za-z0-9_.-]{1,4000}"\}\n'
)


def anchor_line(cp: Checkpoint) -> str:
    """One anchor line (with its newline) for a checkpoint."""
    return json.dumps({"record": "checkpoint", **cp.to_dict()}, sort_keys=True) + "\n"


def _warn_torn_line(torn: bytes, path: Path) -> None:
    """Log a torn final line (one with no newline), which a crash mid-append leaves behind and readers skip."""
    log.warning(
        "the audit anchor %s ends with a torn line (%d bytes without a newline, left by an interrupted "
        "write); it is ignored and cut off by the next append", path, len(torn),
    )


def read_checkpoint_file(path: Path, *, what: str, allow_events: bool) -> list[Checkpoint] | None:
    """The checkpoints in an anchor (or, with ``allow_events``, an export); None if the file does not exist.

    A malformed line raises :class:`AuditChainError` naming the file and
    line; signatures are checked later, by :func:`~hitlgate.engine.ledger.audit.verify_chain`.
    """
    try:
        # "utf-8" and its aliases (or the UTF-8 locale's default) decode
        # alike, so the codec name is not mutated.
        with open(path, encoding="utf-8") as fh:  # pragma: no mutate
            exported = read_export(fh)
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise StorageError(f"{what} {path} is a directory, not a file") from exc
    except OSError as exc:
        raise StorageError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except AuditChainError as exc:
        raise AuditChainError(f"{what} {path}: {exc}") from None
    if exported.events and not allow_events:
        raise AuditChainError(f"{what} {path} holds audit events; an anchor holds only signed checkpoints")
    return exported.checkpoints


def load_external_anchor(path: Path) -> list[Checkpoint]:
    """The checkpoints of an anchor or export file an auditor kept elsewhere (``audit verify --anchor``)."""
    cps = read_checkpoint_file(path, what="anchor file", allow_events=True)
    if cps is None:
        raise InputError(f"anchor file {path} does not exist", code="unreadable")
    if not cps:
        raise InputError(f"anchor file {path} holds no signed checkpoint; it anchors nothing")
    return cps


class AuditAnchor:
    """The engine's append-only anchor file (see module docstring)."""

    def __init__(self, path: Path) -> None:
        """Bind to ``path``; nothing is touched until first use."""
        self.path = Path(path)
        #: What :meth:`last` read last: the file's (device, inode), the offset where its complete lines
        #: ended, the bytes just before that offset, and the newest checkpoint (None: none yet).
        self._last_seen: tuple[tuple[int, int], int, bytes, Checkpoint | None] | None = None

    def exists(self) -> bool:
        """Whether the anchor file exists (a missing file with stored checkpoints is an alarm)."""
        return os.path.lexists(self.path)

    def _open(self) -> int:
        """Open for appending (creating it 0600, and its directory 0700); return the descriptor."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Inverted, this would only move the fchmod and the directory fsync from a file's creation to
            # its next open, which every append makes right after ensure_writable: equivalent.
            created = not os.path.lexists(self.path)  # pragma: no mutate
            # Read-write, not write-only: an append first looks at the last
            # byte to find a torn line left by a crash.
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            # The creation mode only narrows the moment before the fchmod below, which sets 0600 on a new
            # file before anything is written (an existing file keeps its mode, checked below): equivalent.
            fd = os.open(self.path, flags, 0o600)  # pragma: no mutate
        except OSError as exc:
            raise StorageError(f"cannot open the audit anchor {self.path}: {exc.strerror or exc}") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StorageError(f"the audit anchor {self.path} is not a regular file")
            if st.st_mode & 0o022:
                raise StorageError(
                    f"the audit anchor {self.path} is writable by group or others "
                    f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {self.path}"
                )
            if created:
                os.fchmod(fd, 0o600)
                # Make the new directory entry durable too.
                dfd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot prepare the audit anchor {self.path}: {exc.strerror or exc}") from exc
        except BaseException:
            os.close(fd)
            raise
        return fd

    def is_empty(self) -> bool:
        """Whether the anchor holds no line yet: missing, or created empty (as :meth:`ensure_writable` does)."""
        try:
            return os.lstat(self.path).st_size == 0
        except FileNotFoundError:
            return True

    def ensure_writable(self) -> None:
        """Check (before a commit) that the anchor can be opened for appending; create it if missing."""
        os.close(self._open())

    def append(self, checkpoints: Iterable[Checkpoint]) -> None:
        """Append checkpoints, one line each, and fsync; all or nothing.

        Raises :class:`StorageError` on any failure, after truncating the
        file back to the length it had before this append (see module
        docstring).
        """
        data = "".join(anchor_line(cp) for cp in checkpoints).encode("utf-8")
        if not data:
            return
        fd = self._open()
        start: int | None = None
        try:
            # One write under an exclusive lock: concurrent engines never
            # interleave their lines, and the length read here stays valid.
            fcntl.flock(fd, fcntl.LOCK_EX)
            start = self._cut_torn_tail(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            rolled_back = start is not None and self._truncate(fd, start)
            # Which of the two it says cannot be tested: a truncate that fails right after a failed
            # write cannot be produced on purpose (see _truncate).
            undo = (" (the partial line was removed)" if rolled_back  # pragma: no mutate
                    else " (a partial line may remain; it is ignored when reading)")
            raise StorageError(
                f"cannot append to the audit anchor {self.path}: {exc.strerror or exc}{undo}",
                code="anchor_write_failed",
            ) from exc
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _cut_torn_tail(self, fd: int) -> int:
        """Cut off a final line without newline (left by a crash); return the file's length after that."""
        size = os.fstat(fd).st_size
        # One byte at the end: asking for more returns that byte alone, so the count is equivalent.
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":  # pragma: no mutate
            return size
        # Look back for the last complete line; lines are well under 64 KiB.
        back = min(size, 64 * 1024)
        tail = os.pread(fd, back, size - back)
        newline = tail.rfind(b"\n")
        keep = size - back + newline + 1 if newline >= 0 else (0 if back == size else size)
        if keep == size:
            raise OSError(f"the last line of the audit anchor {self.path} is longer than 64 KiB and has no newline")
        log.warning("cutting a torn line (%d bytes, left by an interrupted write) off the audit anchor %s",
                    size - keep, self.path)
        os.ftruncate(fd, keep)
        os.fsync(fd)
        return keep

    def _truncate(self, fd: int, length: int) -> bool:
        """Truncate back to ``length`` after a failed append; whether that worked."""
        try:
            os.ftruncate(fd, length)
            os.fsync(fd)
        except OSError:
            log.exception("could not truncate the audit anchor %s back after a failed append", self.path)
            # Only the wording of the append's error depends on this (a partial line is ignored
            # when the anchor is read, either way), and a truncate that fails after a failed
            # write cannot be produced on purpose in a test.
            return False  # pragma: no mutate
        return True

    def last(self) -> Checkpoint | None:
        """The newest checkpoint at the end of the file; None when missing or empty.

        Writers append a checkpoint after their commit, so the lines at the
        end can be out of seq order: a writer that committed first may append
        after several that committed later. The newest is the line with the
        highest seq, not the last line; comparing the chain with an older one
        would let a cut of the newest events pass. So this reads the complete
        lines of the final 64 KiB (about a hundred lines) the first time, and
        afterwards only what was appended since (the file must still hold the
        bytes it ended with then, and have grown by at most 64 KiB; otherwise
        it is read afresh): the newest checkpoint is then the highest seq this
        reader has seen at the end of this file, however many lines were
        appended after it (every write transaction looks). Lines are found
        by their seq without parsing them (:data:`_SEQ_OF_LINE`); the last
        line, and a line with a higher seq, are parsed.

        A torn final line (no newline) and blank lines are ignored, as in
        :meth:`iter_checkpoints`; a malformed last line raises
        :class:`AuditChainError`. The signature is not checked here: only
        the engine can write this file, and :meth:`iter_checkpoints` plus
        :func:`~hitlgate.engine.ledger.audit.verify_chain` check every line.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            # Not there (a path under a regular file cannot exist either);
            # writing it is what reports an unusable path.
            return None
        except OSError as exc:
            raise StorageError(f"cannot read the audit anchor {self.path}: {exc.strerror or exc}") from exc
        try:
            stat = os.fstat(fd)
            size = stat.st_size
            # What the last read found: (device, inode), where its complete lines ended, the bytes just
            # before that point (the last complete line and the newline before it), and the newest
            # checkpoint. Bytes, not timestamps, which can be too coarse to show a rewrite.
            cached = self._last_seen
            start = 0
            newest: Checkpoint | None = None
            # The bytes kept last time and everything after them, in one read.
            got = (os.pread(fd, size - cached[1] + len(cached[2]), cached[1] - len(cached[2]))
                   if cached is not None and cached[0] == (stat.st_dev, stat.st_ino) and cached[1] <= size
                   and size - cached[1] <= _TAIL_BYTES else None)
            if cached is not None and got is not None and got.startswith(cached[2]):
                tail = got[len(cached[2]):]
                if b"\n" not in tail:
                    return cached[3]  # Nothing appended, or only a torn line so far.
                start = tail_at = cached[1]
                newest = cached[3]
                lines = tail[: tail.rfind(b"\n") + 1].split(b"\n")
            else:
                # One byte more than the window: a line of up to its size (its newline included) is then
                # always read whole, with the newline that ends the line before it.
                back = min(size, _TAIL_BYTES + 1)
                start = tail_at = size - back
                tail = os.pread(fd, back, start)
                # Complete lines only: what follows the last newline is a torn line (or nothing). When the
                # window does not reach the start of the file, its first piece is the end of a line that
                # began before it.
                lines = tail[: tail.rfind(b"\n") + 1].split(b"\n")
                if start > 0:
                    start += len(lines[0]) + 1
                    lines = lines[1:]
        except OSError as exc:
            raise StorageError(f"cannot read the audit anchor {self.path}: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)
        # Blank lines are skipped, as iter_checkpoints skips them.
        line = next((raw for raw in reversed(lines) if raw.strip()), None)
        if line is None:
            if newest is None and size > _TAIL_BYTES + 1:
                raise AuditChainError(
                    f"the audit anchor {self.path} has no complete checkpoint line in its last 64 KiB"
                )
        else:
            checkpoint = self._parse_tail_line(line, "the last line")
            if newest is None or checkpoint.seq > newest.seq:
                newest = checkpoint
            for raw in lines:
                found = _SEQ_OF_LINE.fullmatch(raw + b"\n")
                if found is not None and int(found.group(1)) > newest.seq:
                    newest = self._parse_tail_line(raw, f"the line of seq {int(found.group(1))}")
        # Where the complete lines end, and the bytes before that point the next call compares (the last
        # line, whole, with what precedes it in this read: a rewrite of the end is read afresh).
        end = start + len(b"\n".join(lines))
        self._last_seen = ((stat.st_dev, stat.st_ino), end, tail[max(0, end - tail_at - _KEEP_BYTES):end - tail_at],
                           newest)
        return newest

    def _parse_tail_line(self, line: bytes, which: str) -> Checkpoint:
        """The checkpoint of one complete anchor line; :class:`AuditChainError` naming ``which`` if malformed."""
        try:
            doc = json.loads(line.decode("utf-8"))  # pragma: no mutate - codec names ignore case
            if not isinstance(doc, dict) or doc.pop("record", None) != "checkpoint":
                raise ValueError("not a checkpoint record")
            return Checkpoint.from_dict(doc)
        except (ValueError, ValidationError, RecursionError) as exc:
            raise AuditChainError(f"{which} of the audit anchor {self.path} is malformed: {exc}") from None

    def size(self) -> int:
        """The anchor file's length in bytes (0 when it does not exist)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StorageError(f"cannot read audit anchor {self.path}: {exc.strerror or exc}") from exc

    def iter_checkpoints(self, *, start: int = 0, until: int | None = None) -> Iterator[Checkpoint]:
        """The anchored checkpoints one line at a time (nothing when the file does not exist).

        A torn final line is skipped (see the module docstring); any other
        malformed line raises :class:`AuditChainError` naming it. One line is
        held at a time, so ``audit verify`` reads an anchor of millions of
        checkpoints in constant memory. With ``until`` (a :meth:`size` taken
        when a read snapshot began), lines that start at or after that byte
        are not read: checkpoints appended while a long verify streams the
        file belong to commits its snapshot does not see. ``start`` is the
        byte to begin at, the start of a line (:meth:`start_of`).
        """
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed below; the generator owns it.
        except FileNotFoundError:
            return
        except IsADirectoryError as exc:
            raise StorageError(f"audit anchor {self.path} is a directory, not a file") from exc
        except OSError as exc:
            raise StorageError(f"cannot read audit anchor {self.path}: {exc.strerror or exc}") from exc
        with fh:
            try:
                if start:
                    fh.seek(start)
                at = start
                for lineno, raw in enumerate(fh, start=1):
                    if until is not None and at >= until:
                        return
                    line_at, at = at, at + len(raw)
                    if not raw.endswith(b"\n"):
                        _warn_torn_line(raw, self.path)
                        return
                    if not raw.strip():
                        continue
                    where = f"export line {lineno}" if not start else f"the line at byte {line_at}"
                    yield self._parse_line(raw, where)
            except OSError as exc:
                raise StorageError(f"cannot read audit anchor {self.path}: {exc.strerror or exc}") from exc

    def _parse_line(self, raw: bytes, where: str) -> Checkpoint:
        try:
            doc = json.loads(raw.decode("utf-8"))  # pragma: no mutate - codec names ignore case
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            record = doc.pop("record", None)
            if record == "event":
                raise AuditChainError(
                    f"audit anchor {self.path} holds audit events; an anchor holds only signed checkpoints"
                )
            if record != "checkpoint":
                raise ValueError(f"unknown record type {record!r}")
            return Checkpoint.from_dict(doc)
        except (ValueError, ValidationError, RecursionError) as exc:
            raise AuditChainError(f"audit anchor {self.path}: {where} is malformed: {exc}") from None

    def start_of(self, seq: int, *, until: int | None = None) -> tuple[int, int]:
        """Where an incremental verify from ``seq`` begins reading, and the highest seq of the lines before it.

        The lines are scanned, not parsed: each line's seq is read from its
        bytes as the engine writes them (:func:`anchor_line`), and the scan
        stops at the first line whose seq is at or above ``seq``, or that
        does not have that shape (it is then parsed, and refused if
        malformed, as in a full read). Every line before the returned offset
        names a lower seq, which a walk from ``seq`` does not check again;
        nothing recorded outside the file decides where reading begins. At
        10^7 events (2.4 million lines) the scan is seconds where parsing
        every line took a minute.
        """
        highest = 0
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed below.
        except OSError:
            return 0, 0  # The read that follows reports it (or finds no file).
        at = 0
        try:
            with fh:
                for raw in fh:
                    if until is not None and at >= until:
                        break
                    found = _SEQ_OF_LINE.fullmatch(raw)
                    if found is None or int(found[1]) >= seq:
                        break
                    highest = max(highest, int(found[1]))
                    at += len(raw)
        except OSError:
            return 0, 0  # The read that follows reports it.
        return at, highest

    @property
    def verified_mark_path(self) -> Path:
        """Where ``audit verify`` records the last anchored checkpoint it verified (next to the anchor)."""
        return self.path.with_name(self.path.name + VERIFIED_SUFFIX)

    def verified_mark(self) -> tuple[int, str] | None:
        """The ``(seq, hash)`` the last successful ``audit verify`` reached, or None (no mark, or unreadable).

        The mark lives next to the anchor, outside the database, so someone
        who can only write the database cannot move it; and it only ever
        names an anchored checkpoint, which an incremental verify checks
        again (signature, and the stored event's hash at that seq). An
        unreadable mark means a full verify, never a skipped one.
        """
        try:
            # The codec's spelling is not mutated: "utf-8", "UTF-8" and a UTF-8 locale's default decode alike.
            doc = json.loads(self.verified_mark_path.read_text(encoding="utf-8"))  # pragma: no mutate
            seq, digest = doc["seq"], doc["head_hash"]
            if type(seq) is not int or seq < 1 or not isinstance(digest, str):
                raise ValueError("malformed")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            log.warning("ignoring the unreadable verified mark %s (%s): verifying from genesis",
                        self.verified_mark_path, exc)
            return None
        return seq, digest

    def clear_verified(self) -> None:
        """Forget the verified mark (the chain failed a verify): the next incremental verify walks from genesis."""
        try:
            # With missing_ok False a missing mark raises FileNotFoundError,
            # which the OSError handler below logs: the mark is gone either way.
            self.verified_mark_path.unlink(missing_ok=True)  # pragma: no mutate
        except OSError as exc:
            log.warning("cannot remove the verified mark %s: %s", self.verified_mark_path, exc.strerror or exc)

    def record_verified(self, seq: int, digest: str) -> None:
        """Record that the chain verified through the anchored checkpoint ``(seq, digest)`` (atomic replace)."""
        path = self.verified_mark_path
        tmp = path.with_name(path.name + ".tmp")
        # Key order and the codec's spelling cannot change what verified_mark() parses back.
        data = json.dumps({"seq": seq, "head_hash": digest}, sort_keys=True) + "\n"  # pragma: no mutate
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data.encode("utf-8"))  # pragma: no mutate - ASCII either way (see above).
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"cannot record the verified mark {path}: {exc.strerror or exc}") from exc

"""Fault and tampering: lines of the audit anchor file that are not signed checkpoints.

Reading the anchor (``audit verify``, the guard's comparison) refuses any
complete line that is not a JSON object with ``"record": "checkpoint"``,
naming the file, the line and what is wrong with it; it skips blank lines
(and keeps reading after them); an anchor path it cannot open is a storage
error with the operating system's reason.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.anchor import AuditAnchor
from hitlgate.engine.ledger.audit import Checkpoint
from hitlgate.errors import AuditChainError, InvalidWarrant, StorageError
from tests.workflow._helpers import granted_warrant, proposal

DOC = proposal("suspend_service_account", "svc-ci-runner")
CODE = "audit_chain_broken"  # The anchor's own refusal code, passed through.


@pytest.fixture
def checkpoint_line(make_engine) -> str:  # noqa: ANN001
    """One genuine anchor line, as the engine wrote it."""
    engine: Engine = make_engine()
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.checkpoint()
    (line,) = engine.anchor.path.read_text(encoding="utf-8").splitlines(keepends=True)
    return line


def _anchor(tmp_path: Path, text: str) -> AuditAnchor:
    path = tmp_path / "copy" / "audit-anchor.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return AuditAnchor(path)


def test_blank_lines_are_skipped_and_reading_goes_on(tmp_path: Path, checkpoint_line: str) -> None:
    anchor = _anchor(tmp_path, "\n  \n" + checkpoint_line + "\n" + checkpoint_line)
    assert [cp.seq for cp in anchor.iter_checkpoints()] == [2, 2]


@pytest.mark.parametrize(("line", "why"), [
    ("[1, 2]", "not a JSON object"),
    ('{"seq": 2}', "unknown record type None"),
    ('{"record": "audit"}', "unknown record type 'audit'"),
])
def test_a_line_that_is_not_a_checkpoint_is_refused_by_line(tmp_path: Path, checkpoint_line: str, line: str,
                                                              why: str) -> None:
    anchor = _anchor(tmp_path, checkpoint_line + line + "\n")
    with pytest.raises(AuditChainError, match="^" + re.escape(f"audit anchor {anchor.path}: export line 2 is "
                                                              f"malformed: {why}") + "$"):
        list(anchor.iter_checkpoints())


def test_a_checkpoint_line_without_its_record_type_is_refused(tmp_path: Path, checkpoint_line: str) -> None:
    doc = json.loads(checkpoint_line)
    del doc["record"]
    anchor = _anchor(tmp_path, json.dumps(doc) + "\n")
    with pytest.raises(AuditChainError, match="export line 1 is malformed: unknown record type None$"):
        list(anchor.iter_checkpoints())


def test_an_anchor_path_that_cannot_be_opened_names_the_reason(tmp_path: Path) -> None:
    loop = tmp_path / "audit-anchor.jsonl"
    os.symlink(loop, loop)
    with pytest.raises(StorageError, match="^" + re.escape(f"cannot read audit anchor {loop}: Too many levels of "
                                                           "symbolic links") + "$"):
        list(AuditAnchor(loop).iter_checkpoints())


def test_guard_refuses_a_warrant_while_the_anchor_cannot_be_read(make_engine) -> None:  # noqa: ANN001
    # Fail closed: the guard compares the chain with the anchor before it consumes; an anchor it cannot
    # read refuses the warrant, with the anchor's own reason and code. The refusal cannot be recorded
    # (recording appends to the chain, which checks the anchor first): the log says so, and nothing is used.
    engine: Engine = make_engine()
    req, token = granted_warrant(engine, DOC, ("carol",))
    with engine.anchor.path.open("a", encoding="utf-8") as f:
        f.write("not a checkpoint\n")
    ran: list[object] = []
    with pytest.raises(InvalidWarrant, match="^" + re.escape(
            f"invalid warrant: the last line of the audit anchor {engine.anchor.path} is malformed: Expecting "
            "value: line 1 column 1 (char 0)") + "$") as exc:
        engine.guard().execute(token, DOC["action"], ran.append)
    assert exc.value.code == CODE and not ran
    assert [e.kind for e in engine.audit_events(req.id)][-1] == "warrant_issued"
    assert engine.get(req.id).status == "granted"


def test_checkpoints_appended_in_one_call_are_one_line_each(make_engine, tmp_path: Path) -> None:  # noqa: ANN001
    # An append of several checkpoints (a recovery writes the ones the anchor lost) is one write of whole lines.
    engine: Engine = make_engine()
    for target in ("svc-ci-runner", "svc-payments-key"):
        engine.propose(proposal("suspend_service_account", target))
        engine.checkpoint()
    written = engine.anchor.path.read_text(encoding="utf-8")
    checkpoints = list(engine.anchor.iter_checkpoints())
    assert len(checkpoints) == 2 and checkpoints[0].seq < checkpoints[1].seq

    again = AuditAnchor(tmp_path / "again" / "audit-anchor.jsonl")
    again.path.parent.mkdir()
    again.append(checkpoints)
    assert again.path.read_text(encoding="utf-8") == written
    assert list(again.iter_checkpoints()) == checkpoints


def _checkpoint(tmp_path: Path, line: str) -> Checkpoint:
    """The checkpoint an anchor line holds."""
    path = tmp_path / "one-checkpoint.jsonl"
    path.write_text(line, encoding="utf-8")
    [cp] = list(AuditAnchor(path).iter_checkpoints())
    return cp


@pytest.mark.parametrize("torn", [57, 64 * 1024 - 1], ids=["short", "window-starts-at-the-newline"])
def test_a_torn_tail_is_cut_back_to_the_last_complete_line(tmp_path: Path, checkpoint_line: str, torn: int) -> None:
    # Two complete lines, then what a writer killed mid-line leaves: the next append keeps both lines.
    partial = (checkpoint_line * (torn // len(checkpoint_line) + 1))[:torn].replace("\n", " ")
    anchor = _anchor(tmp_path, checkpoint_line + checkpoint_line + partial)
    cp = _checkpoint(tmp_path, checkpoint_line)
    anchor.append([cp])
    assert anchor.path.read_text(encoding="utf-8") == checkpoint_line * 3


def test_a_file_that_is_only_a_torn_line_is_emptied_before_the_append(tmp_path: Path, checkpoint_line: str) -> None:
    anchor = _anchor(tmp_path, checkpoint_line[:57])
    cp = _checkpoint(tmp_path, checkpoint_line)
    anchor.append([cp])
    assert anchor.path.read_text(encoding="utf-8") == checkpoint_line


def test_a_torn_line_longer_than_64_kib_is_refused_not_cut(tmp_path: Path, checkpoint_line: str) -> None:
    # No complete line within the last 64 KiB: cutting would have to guess; the anchor is left as it is.
    text = checkpoint_line + "x" * (64 * 1024 + 10)
    anchor = _anchor(tmp_path, text)
    cp = _checkpoint(tmp_path, checkpoint_line)
    message = (f"cannot append to the audit anchor {anchor.path}: the last line of the audit anchor {anchor.path} "
               "is longer than 64 KiB and has no newline (a partial line may remain; it is ignored when reading)")
    with pytest.raises(StorageError, match="^" + re.escape(message) + "$"):
        anchor.append([cp])
    assert anchor.path.read_text(encoding="utf-8") == text


def test_an_anchor_path_that_is_a_symbolic_link_is_refused(tmp_path: Path, checkpoint_line: str) -> None:
    # The anchor is opened without following a link: a planted link must not redirect the appends.
    target = tmp_path / "elsewhere.jsonl"
    target.write_text(checkpoint_line, encoding="utf-8")
    link = tmp_path / "anchor" / "audit-anchor.jsonl"
    link.parent.mkdir()
    link.symlink_to(target)
    cp = _checkpoint(tmp_path, checkpoint_line)
    message = f"cannot open the audit anchor {link}: {os.strerror(errno.ELOOP)}"
    with pytest.raises(StorageError, match="^" + re.escape(message) + "$"):
        AuditAnchor(link).append([cp])
    assert target.read_text(encoding="utf-8") == checkpoint_line


def test_an_anchor_in_directories_not_yet_made_gets_them_private(make_engine, tmp_path: Path) -> None:  # noqa: ANN001
    # `audit_anchor: /mnt/audit/hitlgate/anchor.jsonl` on a fresh mount: the directories are made, the last one 0700.
    path = tmp_path / "mnt" / "audit" / "hitlgate" / "audit-anchor.jsonl"
    engine: Engine = make_engine(config={"audit_anchor": path})
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.checkpoint()
    assert [cp.seq for cp in AuditAnchor(path).iter_checkpoints()] == [2]
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_a_new_anchor_is_0600_whatever_the_umask(make_engine) -> None:  # noqa: ANN001
    # A umask without the owner's write bit would leave a new anchor read-only to its own engine.
    engine: Engine = make_engine()
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert not engine.anchor.exists()
    old = os.umask(0o277)
    try:
        engine.checkpoint()
    finally:
        os.umask(old)
    assert os.stat(engine.anchor.path).st_mode & 0o777 == 0o600


def test_a_new_anchor_whose_directory_cannot_be_synced_is_refused_by_name(
    tmp_path: Path, checkpoint_line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new anchor's directory entry is made durable before anything is written to it: a disk that
    # fails there is named, with the path, and the file descriptor is not leaked.
    from hitlgate.engine.ledger import anchor as anchor_mod

    real = os.fsync

    def fsync(fd: int) -> None:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    anchor = AuditAnchor(tmp_path / "anchor" / "audit-anchor.jsonl")
    cp = _checkpoint(tmp_path, checkpoint_line)
    fds = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(anchor_mod.os, "fsync", fsync)
    message = f"cannot prepare the audit anchor {anchor.path}: {os.strerror(errno.EIO)}"
    with pytest.raises(StorageError, match="^" + re.escape(message) + "$"):
        anchor.append([cp])
    monkeypatch.undo()
    assert len(os.listdir("/proc/self/fd")) == fds
    assert anchor.path.read_text(encoding="utf-8") == ""


# -- last(): the guard's read of the newest anchored checkpoint -------------------------------------------


def test_last_is_none_for_a_missing_empty_or_only_torn_anchor(tmp_path: Path, checkpoint_line: str) -> None:
    assert AuditAnchor(tmp_path / "nowhere" / "audit-anchor.jsonl").last() is None
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert AuditAnchor(blocker / "audit-anchor.jsonl").last() is None  # A path under a regular file.
    assert _anchor(tmp_path, "").last() is None
    assert _anchor(tmp_path, checkpoint_line.rstrip("\n")).last() is None  # Torn by a crash: not yet written.


def test_last_reads_the_final_complete_line(tmp_path: Path, make_engine) -> None:  # noqa: ANN001
    engine: Engine = make_engine()
    for _ in range(2):
        engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
        engine.checkpoint()
    first, second = engine.anchor.path.read_text(encoding="utf-8").splitlines(keepends=True)
    newest = Checkpoint.from_dict({k: v for k, v in json.loads(second).items() if k != "record"})
    assert _anchor(tmp_path, first + second).last() == newest
    assert _anchor(tmp_path, first + second + first[:40]).last() == newest  # A torn tail is skipped.
    assert _anchor(tmp_path, "x" * (64 * 1024) + "\n" + second).last() == newest  # Long lines before it: unread.


def test_last_refuses_a_final_line_longer_than_64_kib(tmp_path: Path, checkpoint_line: str) -> None:
    # A complete last line of 64 KiB and one byte, or a torn one that long hiding the line before it:
    # the newest checkpoint cannot be found in the window, and that is refused, not read as "none".
    for text in (checkpoint_line + "x" * (64 * 1024) + "\n", checkpoint_line + "y" * (64 * 1024 + 1)):
        anchor = _anchor(tmp_path, text)
        message = f"the audit anchor {anchor.path} has no complete checkpoint line in its last 64 KiB"
        with pytest.raises(AuditChainError, match="^" + re.escape(message) + "$"):
            anchor.last()


def _padded(checkpoint_line: str, length: int) -> str:
    """The checkpoint line padded with spaces inside its JSON to ``length`` bytes, its newline included."""
    body = checkpoint_line.rstrip("\n")
    return body[:-1] + " " * (length - 1 - len(body)) + "}\n"


def test_last_reads_a_final_line_of_exactly_64_kib(tmp_path: Path, checkpoint_line: str) -> None:
    # The window is 64 KiB and one byte, so a line of exactly 64 KiB (its newline included) is read with
    # the newline before it, and is known to be whole; a byte more and it is refused.
    expected = Checkpoint.from_dict({k: v for k, v in json.loads(checkpoint_line).items() if k != "record"})
    exact = _padded(checkpoint_line, 64 * 1024)
    assert len(exact.encode()) == 64 * 1024
    assert _anchor(tmp_path, "x" * 100 + "\n" + exact).last() == expected
    assert _anchor(tmp_path, exact).last() == expected  # The whole file, no newline before it.
    over = _anchor(tmp_path, "x" * 100 + "\n" + _padded(checkpoint_line, 64 * 1024 + 1))
    message = f"the audit anchor {over.path} has no complete checkpoint line in its last 64 KiB"
    with pytest.raises(AuditChainError, match="^" + re.escape(message) + "$"):
        over.last()


@pytest.mark.parametrize("after", ["\n", "  \n", "\n\t\n \r\n", "\n" + "{\"rec"],
                         ids=["empty", "spaces", "several", "blank-then-torn"])
def test_last_skips_blank_final_lines_as_reading_the_whole_anchor_does(tmp_path: Path, make_engine,  # noqa: ANN001
                                                                        after: str) -> None:
    # A hand edit that leaves blank lines at the end does not make the guard's quick read disagree with
    # iter_checkpoints (which skips blank lines): both give the newest checkpoint.
    engine: Engine = make_engine()
    for _ in range(2):
        engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
        engine.checkpoint()
    anchor = _anchor(tmp_path, engine.anchor.path.read_text(encoding="utf-8") + after)
    checkpoints = list(anchor.iter_checkpoints())
    assert len(checkpoints) == 2
    assert anchor.last() == checkpoints[-1]


def test_last_of_an_anchor_of_blank_lines_only_is_none_as_reading_it_whole_is(tmp_path: Path) -> None:
    anchor = _anchor(tmp_path, "\n \n\n")
    assert list(anchor.iter_checkpoints()) == []
    assert anchor.last() is None


def test_last_refuses_blank_lines_that_push_the_last_checkpoint_out_of_the_window(
    tmp_path: Path, checkpoint_line: str
) -> None:
    # The newest checkpoint is more than 64 KiB from the end: refused, never taken for "no checkpoint yet".
    anchor = _anchor(tmp_path, checkpoint_line + "\n" * (64 * 1024 + 1))
    message = f"the audit anchor {anchor.path} has no complete checkpoint line in its last 64 KiB"
    with pytest.raises(AuditChainError, match="^" + re.escape(message) + "$"):
        anchor.last()
    # With blank lines up to the window's edge, it is found.
    within = _anchor(tmp_path, checkpoint_line + "\n" * (64 * 1024 - len(checkpoint_line.encode())))
    assert within.last() == list(within.iter_checkpoints())[-1]


def test_last_reads_a_line_that_holds_a_carriage_return_as_json_whitespace(tmp_path: Path,
                                                                           checkpoint_line: str) -> None:
    # Only a newline ends a line, as in iter_checkpoints; a CR inside is JSON whitespace, not a break.
    anchor = _anchor(tmp_path, checkpoint_line.replace(",", ",\r", 1))
    assert anchor.last() == list(anchor.iter_checkpoints())[-1]


@pytest.mark.parametrize(("line", "why"), [
    (b"[1, 2]", "not a checkpoint record"),
    (b'{"record": "event", "seq": 2}', "not a checkpoint record"),
    (b'{"seq": 2}', "not a checkpoint record"),
    (b"{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    (b"\xff{}", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
], ids=["not-an-object", "an-event", "no-record-type", "not-json", "not-utf8"])
def test_last_refuses_a_final_line_that_is_not_a_checkpoint(tmp_path: Path, checkpoint_line: str, line: bytes,
                                                            why: str) -> None:
    anchor = _anchor(tmp_path, checkpoint_line)
    with open(anchor.path, "ab") as fh:
        fh.write(line + b"\n")
    message = f"the last line of the audit anchor {anchor.path} is malformed: {why}"
    with pytest.raises(AuditChainError, match="^" + re.escape(message) + "$"):
        anchor.last()


def test_last_refuses_a_checkpoint_line_with_a_field_missing(tmp_path: Path, checkpoint_line: str) -> None:
    doc = json.loads(checkpoint_line)
    del doc["kid"]
    anchor = _anchor(tmp_path, json.dumps(doc) + "\n")
    message = f"the last line of the audit anchor {anchor.path} is malformed: invalid audit checkpoint: 1 problem(s)"
    with pytest.raises(AuditChainError, match="^" + re.escape(message) + "\n"):
        anchor.last()


def test_last_does_not_follow_a_link_planted_at_the_anchor_path(tmp_path: Path, checkpoint_line: str) -> None:
    target = tmp_path / "elsewhere.jsonl"
    target.write_text(checkpoint_line, encoding="utf-8")
    link = tmp_path / "audit-anchor.jsonl"
    link.symlink_to(target)
    message = f"cannot read the audit anchor {link}: {os.strerror(errno.ELOOP)}"
    with pytest.raises(StorageError, match="^" + re.escape(message) + "$"):
        AuditAnchor(link).last()


def test_last_reads_a_final_line_that_fills_the_window_but_one_byte(tmp_path: Path, checkpoint_line: str) -> None:
    # The 64 KiB read starts exactly at the newline before the last line: that line is complete, not too long.
    body = checkpoint_line.rstrip("\n")
    padded = body[:-1] + " " * (64 * 1024 - 2 - len(body)) + "}"
    assert len(padded) + 1 == 64 * 1024 - 1
    anchor = _anchor(tmp_path, "x" * 100 + "\n" + padded + "\n")
    expected = Checkpoint.from_dict({k: v for k, v in json.loads(checkpoint_line).items() if k != "record"})
    assert anchor.last() == expected


def test_last_refuses_an_anchor_path_that_is_a_directory_by_its_reason(tmp_path: Path) -> None:
    # A directory opens read-only but cannot be read: the error names the path and the reason alone.
    path = tmp_path / "audit-anchor.jsonl"
    path.mkdir()
    message = f"cannot read the audit anchor {path}: {os.strerror(errno.EISDIR)}"
    with pytest.raises(StorageError, match="^" + re.escape(message) + "$"):
        AuditAnchor(path).last()


@pytest.mark.parametrize("length", [4 * 1024 - 1, 4 * 1024, 4 * 1024 + 1, 4 * 1024 + 2, 5 * 1024])
@pytest.mark.parametrize("shape", ["final-line", "torn-tail", "blank-tail"])
def test_last_reads_past_its_first_4_kib_window_as_the_64_kib_one_would(
    tmp_path: Path, checkpoint_line: str, length: int, shape: str
) -> None:
    # last() reads the final 4 KiB first and the 64 KiB window only when no complete line is found there:
    # a final line, a torn tail or blank lines around that size give what reading the whole file gives.
    padded = _padded(checkpoint_line, length)
    text = {
        "final-line": "x" * 50 + "\n" + checkpoint_line + padded,
        "torn-tail": "x" * 50 + "\n" + padded + "y" * (length - 1),
        "blank-tail": "x" * 50 + "\n" + padded + " \n" * (length // 2),
    }[shape]
    anchor = _anchor(tmp_path, text)
    expected = Checkpoint.from_dict({k: v for k, v in json.loads(padded).items() if k != "record"})
    assert anchor.last() == expected


def test_the_last_checkpoint_is_read_again_after_any_change_to_the_file(tmp_path: Path, checkpoint_line: str) -> None:
    # last() keeps what it parsed while the file still ends with the same bytes (each write transaction
    # asks for it); a rewrite of the same length with the modification time put back is still seen.
    anchor = _anchor(tmp_path, checkpoint_line)
    first = anchor.last()
    assert first is not None and first.seq == 2
    assert anchor.last() is first
    doc = json.loads(checkpoint_line)
    forged = json.dumps({**doc, "seq": 3}) + "\n"
    assert len(forged) == len(checkpoint_line)
    before = anchor.path.stat()
    anchor.path.write_text(forged, encoding="utf-8")
    os.utime(anchor.path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert anchor.path.stat().st_mtime_ns == before.st_mtime_ns
    assert anchor.last().seq == 3  # type: ignore[union-attr]
    # The same, with the timestamps frozen entirely (a file system whose clock is too coarse to show it).
    again = anchor.path.read_text(encoding="utf-8").replace('"seq":3', '"seq":4').replace('"seq": 3', '"seq": 4')
    assert len(again) == len(forged)
    stat_before = anchor.path.stat()
    anchor.path.write_text(again, encoding="utf-8")
    os.utime(anchor.path, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns))
    assert anchor.last().seq == 4  # type: ignore[union-attr]
    # A malformed last line is refused however recently a good one was read.
    anchor.path.write_text(checkpoint_line + "[1]\n", encoding="utf-8")
    with pytest.raises(AuditChainError, match="is malformed"):
        anchor.last()
    anchor.path.unlink()
    assert anchor.last() is None

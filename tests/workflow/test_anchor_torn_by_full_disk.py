"""Fault: the audit anchor's filesystem fills up mid-append, or the process dies mid-write.

Before the fix, a partial line stayed behind and every later ``audit
verify`` failed with "export line N is malformed", forever. Now an append
that fails is truncated back to the previous length, and a torn final line
left by a crash is ignored when reading and cut off by the next append.

The full disk is real: a 64 KiB tmpfs mounted for the test (needs root;
skipped otherwise). The crash case writes the torn line a killed writer
leaves behind.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.errors import StorageError
from tests._require import missing
from tests.workflow._helpers import proposal

PAGE = 4096


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs (root only)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)],
                          capture_output=True, check=False, timeout=30)
    if done.returncode != 0:
        missing("a mountable tmpfs", f"mount -t tmpfs needs root: {done.stderr.decode(errors='replace')}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False, timeout=30)


def _fill(path: Path) -> None:
    """Write until the filesystem is full."""
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"x" * PAGE)
        except OSError:
            pass


def test_append_on_a_full_disk_leaves_no_partial_line(make_engine: Callable[..., Engine], tiny_fs: Path) -> None:
    eng = make_engine(config={"audit_anchor": tiny_fs / "audit-anchor.jsonl"})
    eng.propose(proposal("suspend_service_account", "svc-ci-runner"))
    eng.checkpoint()
    line = eng.anchor.path.stat().st_size
    # Grow the anchor until the next line must cross into a new page, so a
    # full disk lets the write through only part-way.
    while eng.anchor.path.stat().st_size % PAGE + line <= PAGE:
        eng.checkpoint()
    before = eng.anchor.path.read_bytes()
    filler = tiny_fs / "filler"
    _fill(filler)
    with pytest.raises(StorageError, match=r"cannot append to the audit anchor .*No space left on device "
                                           r"\(the partial line was removed\)") as exc:
        eng.checkpoint()
    assert exc.value.code == "anchor_write_failed"
    assert eng.anchor.path.read_bytes() == before
    # Space is freed: verify is OK, and later checkpoints are anchored again.
    filler.unlink()
    assert eng.verify_audit().anchored == 1
    eng.propose(proposal("suspend_service_account", "svc-ci-runner"))
    cp = eng.checkpoint()
    report = eng.verify_audit()
    assert report.anchored == 2 and report.head_seq == cp.seq


def test_torn_last_line_from_a_crash_is_ignored_then_repaired(busy_engine: Engine) -> None:
    path = busy_engine.anchor.path
    good = path.read_bytes()
    torn = good.splitlines(keepends=True)[-1][:57]  # What a writer killed mid-line leaves.
    with open(path, "ab") as fh:
        fh.write(torn)
    report = busy_engine.verify_audit()
    assert report.anchored == 1
    busy_engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    cp = busy_engine.checkpoint()
    data = path.read_bytes()
    assert data.startswith(good) and data.endswith(b"\n") and data.count(b"\n") == good.count(b"\n") + 1
    assert busy_engine.verify_audit().anchored == 2 and cp.seq == 4


def test_a_complete_malformed_line_is_still_an_error(busy_engine: Engine) -> None:
    with open(busy_engine.anchor.path, "ab") as fh:
        fh.write(b'{"record": "checkpoint", "seq": 9}\n')
    from hitlgate.errors import AuditChainError

    with pytest.raises(AuditChainError, match="export line 2 is malformed"):
        busy_engine.verify_audit()


@pytest.fixture
def busy_engine(engine: Engine) -> Engine:
    """An engine with one anchored checkpoint at seq 2."""
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    assert engine.checkpoint().seq == 2
    assert os.path.getsize(engine.anchor.path) > 0
    return engine

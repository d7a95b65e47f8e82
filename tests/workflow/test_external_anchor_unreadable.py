"""Fault: the anchor an auditor passes to ``audit verify --anchor`` cannot be read.

A directory or a symlink loop where the anchor file should be is refused
before any verification, with an error that names it as the anchor file, its
path and the operating system's reason (not Python's ``[Errno ..]`` text):
the auditor must see that the copy they kept is unusable, not a verdict on
the chain.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from hitlgate.engine.ledger.anchor import load_external_anchor
from hitlgate.errors import StorageError


def test_anchor_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=rf"^anchor file {re.escape(str(tmp_path))} is a directory, not a file$"):
        load_external_anchor(tmp_path)


def test_anchor_path_that_is_a_symlink_loop(tmp_path: Path) -> None:
    loop = tmp_path / "anchor.jsonl"
    os.symlink(loop, loop)
    with pytest.raises(StorageError, match=rf"^cannot read anchor file {re.escape(str(loop))}: "
                                           r"Too many levels of symbolic links$"):
        load_external_anchor(loop)

"""A checkpoint with a field out of its form is refused by that field's name.

A checkpoint is what the anchor and ``audit verify`` compare the chain with:
a seq of 0 (before the chain's first event), a malformed head hash or a
local time must never become one, from the database or from an anchor file.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta, timezone
from typing import Any

import pytest

from hitlgate.engine.keys.keyring import EngineKeyring
from hitlgate.engine.ledger.audit import Checkpoint, sign_checkpoint
from hitlgate.errors import ValidationError

from .conftest import NOW
from .test_checkpoint_claims_confusion import _chain


@pytest.fixture
def genuine(keyring: EngineKeyring) -> Checkpoint:
    return sign_checkpoint(keyring, _chain()[-1], NOW)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("seq", 0, "seq: must be an integer >= 1"),
        ("seq", -3, "seq: must be an integer >= 1"),
        ("seq", True, "seq: must be an integer >= 1"),
        ("seq", 2.0, "seq: must be an integer >= 1"),
        ("head_hash", "sha256:" + "0" * 63, "head_hash: must be sha256: followed by 64 hex digits"),
        ("head_hash", 7, "head_hash: must be sha256: followed by 64 hex digits"),
        ("at", NOW.replace(tzinfo=None), "at: must be a timezone-aware UTC datetime"),
        ("at", NOW.astimezone(timezone(timedelta(hours=-5))), "at: must be a timezone-aware UTC datetime"),
        ("token", None, "token, kid: must be strings"),
        ("kid", b"kid", "token, kid: must be strings"),
    ],
)
def test_a_field_out_of_form_is_refused_by_name(genuine: Checkpoint, field: str, value: Any, problem: str) -> None:
    message = f"invalid audit checkpoint: 1 problem(s)\n  - {problem}"
    with pytest.raises(ValidationError, match="^" + re.escape(message) + "$") as err:
        dataclasses.replace(genuine, **{field: value})
    assert list(err.value.problems) == [problem]


def test_the_smallest_seq_is_one(genuine: Checkpoint) -> None:
    assert dataclasses.replace(genuine, seq=1).seq == 1

"""Threat: one Ed25519 key registered for two approvers, written in two text forms.

Two approvers holding one key let its holder fill both places of a dual
approval alone. The schema admits only unpadded base64url, but the same
32 bytes still have four texts: the last character's two low bits are
ignored. The reference check at load compares the decoded bytes; its fast
path (set operations, taken at 10^5 records) must not let one through.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from hitlgate.engine._resources import bundled_data_dir
from hitlgate.engine.decide.inventory import PUBLIC_KEY_PREFIX, load_inventory
from hitlgate.errors import ValidationError

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _unused_bits_flipped(text: str) -> str:
    # 43 characters carry 258 bits for 256: the last one's two low bits are ignored.
    last = _ALPHABET.index(text[-1])
    return text[:-1] + _ALPHABET[last ^ 1]


def test_a_second_approver_with_the_same_key_in_another_form_is_refused(tmp_path: Path) -> None:
    doc = {k: v for k, v in load_inventory([bundled_data_dir()]).document.items()}
    approvers = dict(doc["approvers"])
    first, second = list(approvers)[:2]
    key = approvers[first]["public_key"]
    other = _unused_bits_flipped(key)
    assert other != key
    body = other[len(PUBLIC_KEY_PREFIX):]
    assert base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)) == base64.urlsafe_b64decode(
        key[len(PUBLIC_KEY_PREFIX):] + "=")
    approvers[second] = {**approvers[second], "public_key": other}
    doc["approvers"] = approvers
    data = tmp_path / "data"
    data.mkdir()
    (data / "inventory.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ValidationError, match="inventory") as info:
        load_inventory([data])
    assert any(f"the same key is already registered for {first}" in p for p in info.value.problems), info.value

"""Values from the Python API whose two views differ: what a proposal is validated as is what it holds.

``jsonschema_rs`` validates an Enum member by its ``.value``, while the
Python validators and the engine see the member (its type, its characters):
proposals are therefore judged by the Python validators only (a hostile
review found that accepting Rust's "valid" for them let such members
through). A str subclass may override ``isascii``/``__contains__``:
``check_tree`` must read its characters.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest

from hitlgate.engine.decide import schemas
from hitlgate.engine.decide.proposal import Proposal
from hitlgate.errors import ValidationError
from tests.conftest import make_proposal


class _Kind(enum.Enum):
    agent = "agent"


class _Split(str, enum.Enum):  # noqa: UP042 - its characters differ from its value; StrEnum ties them
    def __new__(cls, shown: str, real: str) -> _Split:
        obj = str.__new__(cls, real)
        obj._value_ = shown
        return obj

    t = ("svc-1", "svc-1\nnot an id " + "x" * 300)


class _Lying(str):
    def isascii(self) -> bool:
        return True

    def __contains__(self, item: object) -> bool:
        return False


@pytest.mark.parametrize("change", [
    lambda d: d["requester"].update(kind=_Kind.agent),
    lambda d: d["action"].update(target=_Split.t),
    lambda d: d["action"]["parameters"].update(x=_Kind.agent),
], ids=["enum-kind", "str-enum-target", "enum-parameter"])
def test_what_rust_accepts_in_an_enum_is_judged_by_python(change: Any) -> None:
    doc = make_proposal("notify_owner", "svc-1")
    change(doc)
    assert schemas.problems("proposal", doc)
    assert not schemas._bulk_valid("proposal", doc)
    with pytest.raises(ValidationError):
        Proposal.from_dict(doc)


@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b"], ids=["nul", "surrogate"])
@pytest.mark.parametrize("where", ["value", "key"])
def test_a_str_subclass_cannot_hide_bad_characters(text: str, where: str) -> None:
    doc = make_proposal("notify_owner", "svc-1")
    if where == "value":
        doc["action"]["parameters"]["x"] = _Lying(text)
    else:
        doc["action"]["parameters"][_Lying(text)] = 1
    with pytest.raises(ValidationError) as info:
        Proposal.from_dict(doc)
    assert info.value.code == "bad_encoding"

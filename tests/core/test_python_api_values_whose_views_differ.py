"""Values from the Python API whose two views differ: what a proposal is validated as is what it holds.

``jsonschema_rs`` validates an Enum member by its ``.value``, while the
Python validators and the engine see the member (its type, its characters):
a caller's document is never offered to Rust as it is (a hostile review
found that accepting Rust's "valid" for it let such members through), only
the copy ``plain_copy`` makes, which holds exact JSON types. A str subclass
may override ``isascii``/``__contains__``: the checks must read its
characters.
"""

from __future__ import annotations

import datetime
import enum
import json
import types
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from hitlgate.engine.approve.approvals import Statement
from hitlgate.engine.decide import schemas
from hitlgate.engine.decide.decider import Decider
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
    # What the Rust validator would have said of the document as the caller built it, members and all:
    # why only plain copies are offered to it.
    assert schemas._bulk_valid("proposal", doc, plain=True)
    assert schemas.check("proposal", doc)
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


# -- Proposal.from_dict copies into exact JSON types, reading each container once --------------------------


class _Target(str, enum.Enum):  # noqa: UP042 - a str-mixin Enum as an SDK caller would write one
    payments = "svc-payments-key"


class _Count(enum.IntEnum):
    three = 3


class _Once(dict):  # type: ignore[type-arg]
    """A dict that shows its checked contents on the first read and a NUL on every later one."""

    reads = 0

    def items(self) -> Any:
        _Once.reads += 1
        return ({"x": "ok"} if _Once.reads == 1 else {"x": "a\x00b"}).items()


class _Hashless(str):
    """A key whose hash differs from the plain string with the same characters."""

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        return self is other


class _View(Mapping[str, Any]):
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def _exact(value: Any) -> None:
    """Every node of ``value`` has an exact JSON type."""
    stack = [value]
    while stack:
        v = stack.pop()
        assert type(v) in (dict, list, str, int, float, bool, type(None)), type(v)
        if type(v) is dict:
            assert all(type(k) is str for k in v)
            stack.extend(v.values())
        elif type(v) is list:
            stack.extend(v)


def test_an_enum_with_a_str_or_int_mixin_is_kept_as_its_plain_value(example_decider: Decider) -> None:
    doc = make_proposal("rotate_api_key", _Target.payments)
    doc["action"]["parameters"].update(n=_Count.three, t=("a", "b"), f=_FloatKind(0.5))
    plain = make_proposal("rotate_api_key", "svc-payments-key")
    plain["action"]["parameters"].update(n=3, t=["a", "b"], f=0.5)
    proposal = Proposal.from_dict(doc)
    _exact(proposal.document)
    assert proposal.document == plain
    assert proposal.digest == Proposal.from_dict(plain).digest
    # Decided as the plain proposal is (before, the member reached the engine, which failed closed).
    got, want = example_decider.decide(doc), example_decider.decide(plain)
    assert got.tier == want.tier != "deny"
    assert got.risk_factors == want.risk_factors


class _FloatKind(float):
    pass


@pytest.mark.parametrize("value", [types.MappingProxyType({"x": "a\x00b"}), _View({"x": "a\ud800b"})],
                         ids=["mappingproxy", "mapping"])
def test_a_mapping_that_is_not_a_dict_is_checked_too(value: Any) -> None:
    doc = make_proposal("notify_owner", "svc-1")
    doc["action"]["parameters"] = value
    with pytest.raises(ValidationError) as info:
        Proposal.from_dict(doc)
    assert info.value.code == "bad_encoding"
    assert "action.parameters.x" in str(info.value)


def test_a_deep_mapping_that_is_not_a_dict_is_refused_not_a_recursion_error() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    doc = make_proposal("notify_owner", "svc-1")
    doc["action"]["parameters"] = _View(deep)
    with pytest.raises(ValidationError) as info:
        Proposal.from_dict(doc)
    assert info.value.code == "too_deep"


def test_a_mapping_is_read_once_so_what_was_checked_is_what_is_kept() -> None:
    _Once.reads = 0
    doc = make_proposal("notify_owner", "svc-1")
    doc["action"]["parameters"] = _Once()
    proposal = Proposal.from_dict(doc)
    assert proposal.document["action"]["parameters"] == {"x": "ok"}
    assert _Once.reads == 1


def test_two_keys_with_the_same_characters_are_a_duplicate() -> None:
    doc = make_proposal("notify_owner", "svc-1")
    doc["action"]["parameters"] = {"x": 1, _Hashless("x"): 2}
    assert len(doc["action"]["parameters"]) == 2
    with pytest.raises(ValidationError) as info:
        Proposal.from_dict(doc)
    assert info.value.code == "duplicate_key"


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", datetime.date(2026, 1, 1), object(), _FloatKind("inf")],
                         ids=["set", "bytes", "date", "object", "inf-float-subclass"])
def test_a_value_that_is_not_json_is_refused_with_its_path(value: Any) -> None:
    doc = make_proposal("notify_owner", "svc-1")
    doc["action"]["parameters"] = {"list": [0, value]}
    with pytest.raises(ValidationError) as info:
        Proposal.from_dict(doc)
    assert "action.parameters.list[1]" in str(info.value)


# -- what the hostile review of plain_copy found ------------------------------------------------------------


class _SpoofDict:
    """An object that says it is a dict (isinstance trusts __class__) and is not one."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return dict


class _SpoofInt:
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return int


class _BadPairs(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        return [1, 2]


class _Raising(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(["a"])

    def __len__(self) -> int:
        return 1


class _ReprHangs:
    def __hash__(self) -> int:
        return 1

    def __repr__(self) -> str:
        raise AssertionError("a message called the caller's __repr__")


@pytest.mark.parametrize("value", [_SpoofDict(), _SpoofInt(), _BadPairs(x=1), _Raising()],
                         ids=["spoofed-dict", "spoofed-int", "items-not-pairs", "getitem-raises"])
def test_a_container_that_lies_or_fails_is_refused_with_its_path_not_a_crash(value: Any) -> None:
    doc = make_proposal("notify_owner", "svc-1")
    doc["action"]["parameters"] = {"v": value}
    with pytest.raises(ValidationError) as info:
        Proposal.from_dict(doc)
    assert "action.parameters.v" in str(info.value)


@pytest.mark.parametrize(("key", "named"), [(10**5000, "16610-bit integer"), (_ReprHangs(), "of type _ReprHangs")],
                         ids=["huge-int", "repr-raises"])
def test_a_key_that_is_not_a_string_is_named_without_its_repr(key: Any, named: str) -> None:
    doc = make_proposal("notify_owner", "svc-1")
    doc["action"]["parameters"] = {key: 1}
    with pytest.raises(ValidationError, match=named):
        Proposal.from_dict(doc)


def test_a_long_type_name_is_not_echoed_whole() -> None:
    doc = make_proposal("notify_owner", "svc-1")
    doc["action"]["parameters"] = {"k": type("X" * 100_000, (), {})()}
    with pytest.raises(ValidationError) as info:
        Proposal.from_dict(doc)
    assert len(str(info.value)) < 400


def test_one_huge_string_repeated_by_reference_is_refused_by_its_characters() -> None:
    doc = make_proposal("notify_owner", "svc-1")
    doc["action"]["parameters"] = {"k": ["a" * 1_000_000] * 1000}  # 10**9 characters, one string
    with pytest.raises(ValidationError) as info:
        Proposal.from_dict(doc)
    assert info.value.code == "input_too_large"
    assert "characters" in str(info.value)


def test_a_proposal_built_by_hand_is_checked_and_copied_as_from_dict_does() -> None:
    doc = make_proposal("rotate_api_key", _Target.payments)
    proposal = Proposal(doc)
    _exact(proposal.document)
    assert proposal.document is not doc
    assert proposal.document == Proposal.from_dict(make_proposal("rotate_api_key", "svc-payments-key")).document
    doc["action"]["parameters"] = {"x": "a\x00b"}
    with pytest.raises(ValidationError) as info:
        Proposal(doc)
    assert info.value.code == "bad_encoding"


@pytest.mark.parametrize("n", [2**53, -(2**53), 2**64, 10**30], ids=["2^53", "-2^53", "2^64", "10^30"])
def test_an_integer_no_action_digest_can_hold_is_refused_with_its_path(n: int) -> None:
    doc = make_proposal("notify_owner", "svc-1")
    doc["action"]["parameters"] = {"n": [n]}
    for attempt in (lambda: Proposal.from_dict(doc), lambda: Proposal.from_json(json.dumps(doc))):
        with pytest.raises(ValidationError, match=r"action\.parameters\.n\[0\]: an integer of \d+ bits"):
            attempt()
    doc["action"]["parameters"] = {"n": [2**53 - 1, -(2**53) + 1]}
    assert Proposal.from_dict(doc).digest.startswith("sha256:")


class _LyingId(str):
    def isprintable(self) -> bool:
        return True

    def __len__(self) -> int:
        return 3


def test_a_statement_checks_and_keeps_the_characters_of_a_str_subclass() -> None:
    fields = {"request_id": "req-1", "action_digest": "sha256:" + "0" * 64, "verdict": "approve",
              "at": "2026-11-28T00:00:00Z"}
    with pytest.raises(ValidationError, match="approver: must"):
        Statement.from_dict({**fields, "approver": _LyingId("bob\x00\x1b[31m" + "x" * 1000)})
    statement = Statement.from_dict({**fields, "approver": _Verdictish.bob})
    assert type(statement.approver) is str
    assert statement.approver == "bob"
    assert b'"approver":"bob"' in statement.canonical()


class _Verdictish(str, enum.Enum):  # noqa: UP042 - a str-mixin Enum as an SDK caller would write one
    bob = "bob"


# -- and what the review of those fixes found ---------------------------------------------------------------


class _TextRaisesError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("the caller's __str__")


class _ItemsRaise(Mapping[str, Any]):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise self.exc

    def __len__(self) -> int:
        return 1

    def items(self) -> Any:
        raise self.exc


@pytest.mark.parametrize(
    "exc", [_TextRaisesError(), ValidationError("approval", ["forged: all good"], code="bad_encoding")],
    ids=["str-raises", "forged-validation-error"],
)
def test_what_a_container_raises_is_named_by_its_type_only(exc: BaseException) -> None:
    doc = make_proposal("notify_owner", "svc-1")
    doc["action"]["parameters"] = {"v": _ItemsRaise(exc)}
    with pytest.raises(ValidationError) as info:
        Proposal.from_dict(doc)
    assert info.value.what == "proposal"
    assert f"action.parameters.v: cannot be read as a JSON object (it raised {type(exc).__name__})" in str(info.value)
    assert "forged" not in str(info.value)


def test_a_proposal_at_the_byte_limit_keeps_room_for_the_requester_the_service_sets() -> None:
    doc = make_proposal("notify_owner", "svc-1")
    doc["action"]["parameters"] = {f"p{i:02d}": "v" * 4000 for i in range(16)}
    used = sum(len(k) + len(v) for k, v in doc["action"]["parameters"].items())
    doc["justification"] = "j" * (65_536 - used - 200)
    doc["requester"] = {"id": "a" * 200, "kind": "human"}  # a long principal name, filled in after the size check
    assert Proposal.from_dict(doc).requester == "a" * 200


class _LateClock(datetime.datetime):
    """Says it is 2099 to whoever asks through its own methods; its fields hold now."""

    def astimezone(self, tz: Any = None) -> datetime.datetime:
        return datetime.datetime(2099, 1, 1, tzinfo=datetime.UTC)

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return "2099-01-01T00:00:00+00:00"


def test_a_statement_keeps_the_time_a_datetime_subclass_holds_not_what_its_methods_say() -> None:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    late = _LateClock(now.year, now.month, now.day, now.hour, now.minute, now.second, tzinfo=datetime.UTC)
    statement = Statement("req-1", "sha256:" + "0" * 64, "approve", "bob", late)
    assert type(statement.at) is datetime.datetime
    assert statement.at == now
    assert statement.to_dict()["at"] == now.strftime("%Y-%m-%dT%H:%M:%SZ")

"""The canonicalisation fast path must write exactly what RFC 8785 writes, or refuse exactly as it refuses.

Action digests, approval signatures, warrant approvals and the audit hash
chain are all computed over :func:`hitlgate.engine._canonical.dumps`. A single
input on which the orjson fast path spelled a byte differently from the
``rfc8785`` package (an escape, a key order, a number) would make signatures
made elsewhere fail, or every stored chain fail to verify. These tests hold
the two against each other on generated documents that reach every corner
of the fast path (control characters, non-ASCII and astral characters in
keys and values, integers at and past the 2**53 bound) and on the inputs that
must leave it (floats, astral keys, lone surrogates, subclasses, deep nesting).
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from hitlgate.engine._canonical import MAX_FAST_DEPTH, dumps, dumps_with_copy, fast_path_applies

# Every character class the fast path must spell like RFC 8785: C0 controls,
# DEL, quotes and backslashes, Latin-1, the line separators JSON.stringify
# writes raw, BMP characters above the surrogate block, and astral ones
# (surrogate-free: hypothesis' text never yields lone surrogates).
_CHARS = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.sampled_from(['"', "\\", "/", "\x7f", "\u2028", "\u2029", "\ufeff", "\ue000", "\uffff"]),
    st.characters(min_codepoint=0x20, max_codepoint=0x2FF),
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
    st.characters(exclude_categories=("Cs",)),
)
_TEXT = st.text(_CHARS, max_size=12)
_INTS = st.one_of(
    st.integers(-(2**53) + 1, 2**53 - 1),
    st.sampled_from([2**53 - 1, -(2**53) + 1, 2**53, -(2**53), 2**63, -(2**64), 10**30]),
)
_SCALARS = st.none() | st.booleans() | _INTS | _TEXT
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)
# Documents that may leave the fast path too: floats anywhere.
_ANY = st.recursive(
    _SCALARS | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _outcome(fn: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(value)
    except Exception as exc:  # noqa: BLE001 - the exception type is what is compared.
        return "raised", type(exc)


@given(_JSON)
def test_fast_path_matches_rfc8785_on_generated_documents(doc: Any) -> None:
    assert _outcome(dumps, doc) == _outcome(rfc8785.dumps, doc)


@given(st.dictionaries(_TEXT, _JSON, max_size=6))
def test_fast_path_matches_rfc8785_on_generated_objects(doc: dict[str, Any]) -> None:
    assert _outcome(dumps, doc) == _outcome(rfc8785.dumps, doc)


@given(_ANY)
def test_documents_with_floats_match_rfc8785(doc: Any) -> None:
    assert _outcome(dumps, doc) == _outcome(rfc8785.dumps, doc)


@given(st.dictionaries(_TEXT, _ANY, max_size=4))
def test_copy_is_what_a_json_round_trip_gives(doc: dict[str, Any]) -> None:
    import json

    try:
        expected = json.loads(json.dumps(doc))
    except ValueError:
        return
    try:
        text, copy = dumps_with_copy(doc)
    except rfc8785.CanonicalizationError:
        return
    assert text == rfc8785.dumps(doc)
    assert copy == expected
    assert list(copy) == list(expected)


def test_astral_keys_sort_by_utf16_not_code_points() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in UTF-16, which sorts before
    # U+E000; by code point it sorts after. orjson would put it last.
    doc = {"\U0001f600": 1, "\ue000": 2, "a": 3}
    assert not fast_path_applies(doc)
    assert dumps(doc) == rfc8785.dumps(doc) == '{"a":3,"\U0001f600":1,"\ue000":2}'.encode()


@pytest.mark.parametrize("n", [2**53, -(2**53), 2**64, -(2**70)])
def test_integers_past_the_double_range_raise_like_rfc8785(n: int) -> None:
    with pytest.raises(rfc8785.IntegerDomainError, match="exceeds safe integer domain"):
        dumps({"n": n})


def test_floats_are_spelled_as_rfc8785_spells_them() -> None:
    doc = {"a": 1.0, "b": 1e21, "c": 5e-324, "d": -0.0, "e": 0.1}
    assert not fast_path_applies(doc)
    assert dumps(doc) == rfc8785.dumps(doc) == b'{"a":1,"b":1e+21,"c":5e-324,"d":0,"e":0.1}'


def test_lone_surrogate_is_refused_like_rfc8785() -> None:
    assert fast_path_applies({"k": "\ud800"})  # The type walk passes; orjson then refuses it.
    with pytest.raises(rfc8785.CanonicalizationError, match="non-UTF-8 codepoints"):
        dumps({"k": "\ud800"})
    # In a key, the package fails while sorting (UTF-16 encoding); so must the fast path.
    with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
        dumps({"\udfff": 1, "a": 2})


class _Level(enum.IntEnum):
    HIGH = 3


class _Name(enum.StrEnum):
    X = "x"


def test_subclasses_and_tuples_match_rfc8785() -> None:
    doc = {"level": _Level.HIGH, "flag": True, "pair": (1, "two"), "name": _Name.X}
    assert not fast_path_applies(doc)
    assert dumps(doc) == rfc8785.dumps(doc)
    assert dumps((1, [2, (3,)])) == rfc8785.dumps((1, [2, (3,)])) == b"[1,[2,[3]]]"


def test_non_string_keys_are_refused_like_rfc8785() -> None:
    with pytest.raises(rfc8785.CanonicalizationError, match="object keys must be strings"):
        dumps({1: "x"})


def test_nesting_past_the_fast_depth_matches_rfc8785() -> None:
    doc: Any = "leaf"
    for _ in range(MAX_FAST_DEPTH + 60):
        doc = {"k": [doc]}
    assert not fast_path_applies(doc)
    assert dumps(doc) == rfc8785.dumps(doc)


def test_the_fast_path_is_taken_for_an_ordinary_action() -> None:
    action = {"type": "rotate_api_key", "target": "svc-é", "parameters": {"grace": 5, "why": "läck\n", "x": None}}
    assert fast_path_applies(action)
    assert dumps(action) == rfc8785.dumps(action)

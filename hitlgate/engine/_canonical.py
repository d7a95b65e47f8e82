"""RFC 8785 (JCS) canonical JSON, with a fast path for the documents the engine hashes.

:func:`dumps` returns exactly the bytes of ``rfc8785.dumps`` for every
input, and raises what it raises. Most documents the approval path hashes
(actions, approval statements, audit events, warrant approvals) hold only
objects with string keys, arrays, strings, integers, booleans and null. For
those, RFC 8785 output is what orjson writes with sorted keys:

* strings: orjson escapes ``"``, ``\\`` and the control characters below
  U+0020 exactly as RFC 8785 (ECMAScript ``JSON.stringify``) does (``\\b``,
  ``\\t``, ``\\n``, ``\\f``, ``\\r``, else ``\\u00xx`` in lower case) and writes
  every other character as UTF-8, as RFC 8785 does;
* integers: the decimal digits, within the range RFC 8785 accepts
  (``|n| <= 2**53 - 1``; larger ones take the slow path, which raises);
* key order: RFC 8785 sorts keys by UTF-16 code units, orjson by code
  points. The two orders agree unless a key holds a character above U+FFFF
  (a surrogate pair sorts below U+E000..U+FFFF in UTF-16), so such keys take
  the slow path.

Anything else (floats, whose ECMAScript spelling orjson does not write;
non-string keys; subclasses of the JSON types; unsupported types; lone
surrogates, which orjson refuses; nesting deeper than :data:`MAX_FAST_DEPTH`)
goes to the ``rfc8785`` package unchanged, so errors and their types are the
package's own. ``tests/crypto/test_canonical_fast_path_differs_from_rfc8785.py``
holds the two against each other on generated documents.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import rfc8785

#: Nesting deeper than this is canonicalised by the ``rfc8785`` package (orjson stops at 255 levels).
MAX_FAST_DEPTH = 200

_INT_MAX = 2**53 - 1
_BMP_MAX = "\uffff"
_OPTIONS = orjson.OPT_SORT_KEYS


def _plain(value: Any, depth: int) -> bool:
    """Whether ``value`` holds only the types (and key spellings) whose orjson output is RFC 8785's."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -_INT_MAX <= value <= _INT_MAX
    if depth >= MAX_FAST_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or not key or max(key) <= _BMP_MAX):
                return False
            if not _plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain(item, depth + 1) for item in value)
    return False


def fast_path_applies(value: Any) -> bool:
    """Whether :func:`dumps` serialises ``value`` with orjson (for tests and benchmarks)."""
    return _plain(value, 0)


def dumps(value: Any) -> bytes:
    """The RFC 8785 canonical JSON of ``value`` (byte for byte ``rfc8785.dumps(value)``)."""
    if _plain(value, 0):
        try:
            return orjson.dumps(value, option=_OPTIONS)
        except orjson.JSONEncodeError:
            # Lone surrogates in a string: the package decides what they give.
            pass
    return rfc8785.dumps(value)


def dumps_with_copy(value: Any) -> tuple[bytes, Any]:
    """The canonical JSON of ``value`` and a private deep copy of it, as JSON would give it back.

    The copy equals ``json.loads(json.dumps(value))`` (keys in the order
    given, tuples as lists); on the fast path orjson makes it.
    """
    if _plain(value, 0):
        try:
            text = orjson.dumps(value, option=_OPTIONS)
        except orjson.JSONEncodeError:
            pass
        else:
            return text, orjson.loads(orjson.dumps(value))
    text = rfc8785.dumps(value)
    return text, json.loads(json.dumps(value))

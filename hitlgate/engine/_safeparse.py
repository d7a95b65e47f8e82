"""Reading and parsing documents from outside, with limits and without recursion.

Every document hitlgate reads from a file, stdin or a caller goes through
here before anything else looks at it, in this order:

1. **Bytes**: at most ``limit + 1`` bytes are read (a regular file larger
   than the limit is refused from its size, before any read), so a 20 MB
   proposal costs one ``fstat``, not 20 MB of memory.
2. **Encoding**: strict UTF-8. A byte order mark, a NUL byte or an
   undecodable byte is refused with its byte offset, line and column.
3. **Nesting**: JSON nesting is measured on the raw text by a linear scan
   that skips strings, before ``json.loads``; YAML is built from the
   parser's event stream by a loop with an explicit stack, never by
   recursion, and the depth is checked as it grows.
4. **YAML features**: anchors and aliases (the "billion laughs" expansion),
   merge keys, tags other than the core ones, duplicate keys and several
   documents in one file are refused; no hitlgate document needs them.
5. **JSON features**: ``NaN``/``Infinity`` (not JSON), numbers too large
   for a 64-bit float (``1e999`` would become inf; YAML's ``.inf`` and
   ``.nan`` likewise), refused with the field's path, duplicate keys (two
   parsers can disagree on which one wins) and strings holding NUL or a
   lone UTF-16 surrogate (``"\\ud800"``, which cannot be stored or
   canonicalised) are refused.

Every refusal is a :class:`~hitlgate.errors.ValidationError` with a precise
code (``input_too_large``, ``bad_encoding``, ``too_deep``, ``yaml_alias``,
``duplicate_key``, or ``invalid_<what>`` for a syntax error) and a message
that names the file and never echoes more than a short prefix of a value.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
import select
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from itertools import accumulate, islice
from pathlib import Path
from typing import IO, Any

import yaml
from yaml import events as _ev
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from hitlgate.errors import ValidationError

#: How many characters of an offending value a message may echo.
ECHO_CHARS = 80

_repr = reprlib.Repr()
_repr.maxstring = ECHO_CHARS
_repr.maxother = ECHO_CHARS
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 4
_repr.maxlevel = 2


def shorten(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, so a message never echoes a huge value."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(value: Any) -> str:
    """A short repr of ``value`` for an error message; bounded time, whatever its size."""
    return shorten(_repr.repr(value))


def _too_large(what: str, label: str, limit: int, limit_key: str | None, size: int | None) -> ValidationError:
    got = f"{size} bytes" if size is not None else "more than that"
    if limit_key is None:
        # A fixed limit (the config file's own size) has no setting to raise: say so.
        hint = "this limit is fixed and cannot be configured"
    else:
        hint = f"raise limits.{limit_key} in hitlgate.yaml if this document is genuine"
    return ValidationError(
        what, [f"{label}: larger than the limit of {limit} bytes ({got}); {hint}"], code="input_too_large"
    )


def read_limited(
    source: str | Path, *, max_bytes: int, what: str, limit_key: str | None, regular_only: bool = False
) -> tuple[bytes, str]:
    """Read at most ``max_bytes`` from a path or ``-`` (stdin); return ``(bytes, label for messages)``.

    ``limit_key`` names the ``limits.*`` setting that raises ``max_bytes``,
    or is None for a fixed limit; the refusal says which.

    A regular file larger than the limit is refused from its size before it
    is read; anything else (stdin, a pipe, a device) is read up to
    ``max_bytes + 1`` bytes and refused if that many arrived.
    """
    if str(source) == "-":
        label = "stdin"
        stream: Any = getattr(sys.stdin, "buffer", None)
        if stream is not None:
            data = stream.read(max_bytes + 1)
        else:  # A text-only stdin (some embedders): characters bound the bytes from above.
            data = sys.stdin.read(max_bytes + 1).encode("utf-8", "surrogateescape")
        if len(data) > max_bytes:
            raise _too_large(what, label, max_bytes, limit_key, None)
        return data, label
    path = Path(source)
    label = str(path)
    try:
        # Opened without blocking first: a FIFO in the pack, which nobody writes to, would otherwise hang
        # the open (and every decision) for good; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as probe:
            st = os.fstat(probe.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise ValidationError(what, [f"{label}: is a directory, not a file"])
            if regular_only and not stat.S_ISREG(st.st_mode):
                raise ValidationError(what, [f"{label}: is not a regular file (a FIFO, socket or device)"])
            if stat.S_ISFIFO(st.st_mode):
                # A FIFO given as an argument (a proposal handed over by another process) waits for its
                # writer, as `cat` does: read at once it would look empty until the writer came. Polled on
                # this same descriptor, so a writer that opens, writes and closes meanwhile is not missed.
                poller = select.poll()
                poller.register(probe.fileno(), select.POLLIN)
                poller.poll()
            os.set_blocking(probe.fileno(), True)
            if stat.S_ISREG(st.st_mode) and st.st_size > max_bytes:
                raise _too_large(what, label, max_bytes, limit_key, st.st_size)
            data = probe.read(max_bytes + 1)
    except OSError as exc:
        raise ValidationError(what, [f"{label}: cannot read: {exc.strerror or exc}"], code="unreadable") from exc
    if len(data) > max_bytes:
        raise _too_large(what, label, max_bytes, limit_key, None)
    return data, label


def _line_col(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def decode_utf8(data: bytes, *, what: str, label: str, base_offset: int = 0, one_line: bool = False) -> str:
    """Decode strict UTF-8, refusing a byte order mark, NUL bytes and undecodable bytes by offset.

    ``base_offset`` is where ``data`` starts in its file; ``one_line`` says
    ``data`` is one line of it (the label names the line), so only the
    column is given.
    """

    def where(i: int) -> str:
        return f"column {i + 1}" if one_line else _line_col(data, i)

    if data.startswith(b"\xef\xbb\xbf"):
        raise ValidationError(
            what, [f"{label}: starts with a UTF-8 byte order mark (BOM); save it as UTF-8 without BOM"],
            code="bad_encoding",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start: exc.start + 1].hex()
        raise ValidationError(
            what,
            [f"{label}: not UTF-8: byte 0x{bad} at byte offset {base_offset + exc.start} "
             f"({where(exc.start)}) cannot be decoded ({exc.reason})"],
            code="bad_encoding",
        ) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ValidationError(
            what,
            [f"{label}: NUL byte at byte offset {base_offset + nul} ({where(nul)}); "
             "the document must be UTF-8 text (is it UTF-16 or binary?)"],
            code="bad_encoding",
        )
    return text


def _as_text(data: bytes | str, *, what: str, label: str) -> str:
    if isinstance(data, bytes):
        return decode_utf8(data, what=what, label=label)
    if data.startswith("\ufeff"):
        raise ValidationError(what, [f"{label}: starts with a byte order mark (BOM)"], code="bad_encoding")
    nul = data.find("\x00")
    if nul >= 0:
        raise ValidationError(what, [f"{label}: NUL character at offset {nul}"], code="bad_encoding")
    return data


# -- JSON ----------------------------------------------------------------------

# A JSON string, unrolled so the regex engine never backtracks into it.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text, strings skipped; linear, no recursion."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if not brackets:
        return 0
    return max(0, max(accumulate(map(_DELTA.__getitem__, brackets))))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise ValueError(f"duplicate key {describe(k)}")
            seen.add(k)
    return doc


def _too_deep(what: str, where: str, max_depth: int) -> ValidationError:
    return ValidationError(
        what, [f"{where}: nested deeper than {max_depth} levels (limits.max_depth)"], code="too_deep"
    )


def parse_json(data: bytes | str, *, what: str, label: str, max_depth: int) -> Any:
    """Parse a JSON document from outside (see module docstring); the result is safe to walk."""
    text = _as_text(data, what=what, label=label)
    if json_depth(text) > max_depth:
        raise _too_deep(what, label, max_depth)
    doc = _decode(
        lambda: json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicates),
        what=what, label=label, max_depth=max_depth,
    )
    check_tree(doc, what=what, max_depth=max_depth)
    return doc


def _decode(decode: Callable[[], Any], *, what: str, label: str, max_depth: int) -> Any:
    """Run a JSON decode, turning each way it can fail into the :class:`ValidationError` that names it."""
    try:
        return decode()
    except json.JSONDecodeError as exc:
        raise ValidationError(
            what, [f"{label}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from None
    except RecursionError:
        # The raw depth scan should have caught it; this is the backstop.
        raise _too_deep(what, label, max_depth) from None
    except ValueError as exc:
        code = "duplicate_key" if str(exc).startswith("duplicate key") else None
        raise ValidationError(what, [f"{label}: {shorten(str(exc), 200)}"], code=code) from None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{describe(text)} is not a finite number (too large for a 64-bit float); refused")
    return value


_LINE_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant, parse_float=_finite_float
)


def parse_json_line(text: str, *, what: str, label: str, max_depth: int) -> Any:
    """:func:`parse_json` for one line of a JSON Lines file whose bytes were already decoded as strict UTF-8.

    The same rules (depth, duplicate keys, NaN/Infinity, non-finite numbers,
    NUL and lone surrogates) at a fraction of the cost, for files of 10^5
    lines: the depth scan runs only when the line has more brackets than
    the limit, and the string walk only when the line has an escape (a raw
    NUL or control character is already refused by the JSON parser, and
    strict UTF-8 holds no lone surrogate).
    """
    if text.count("{") + text.count("[") > max_depth and json_depth(text) > max_depth:
        raise _too_deep(what, label, max_depth)
    doc = _decode(lambda: _LINE_DECODER.decode(text), what=what, label=label, max_depth=max_depth)
    if "\\" in text:
        try:
            check_tree(doc, what=what, max_depth=max_depth)
        except ValidationError as exc:
            # check_tree names the field; the line is what a user needs to find it.
            raise ValidationError(what, [f"{label}: {p}" for p in exc.problems], code=exc.code) from None
    return doc


_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def _bad_string(s: str) -> str | None:
    m = _BAD_CHARS.search(s)
    if m is None:
        return None
    c = m.group()
    return "a NUL character" if c == "\x00" else f"a lone UTF-16 surrogate (\\u{ord(c):04x})"


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{shorten(str(key), 40)}" if path else shorten(str(key), 40)


def _check_finite(value: Any, what: str, path: str) -> None:
    # ``1e999`` parses as inf in Python; no JSON number, JCS or Rego can hold it.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(
            what, [f"{path or '(document)'}: {value!r} is not a finite number (a number too large for a 64-bit "
                   "float, like 1e999, or NaN/Infinity); refused"]
        )


def check_tree(doc: Any, *, what: str, max_depth: int) -> None:
    """Walk a parsed document with an explicit stack: bounded depth, string keys, clean strings.

    A float that is not finite (JSON ``1e999`` parses as inf) is refused
    with its path, with the ``invalid_<what>`` code.

    For what a parser returns (exact JSON types, its size bounded by the
    bytes read); a caller's own Python value goes through
    :func:`plain_copy`, which also bounds its size and copies it.
    """
    _check_finite(doc, what, "")
    stack: list[tuple[Any, str, int]] = [(doc, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            bad = _bad_string(value)
            if bad:
                raise ValidationError(
                    what, [f"{path or '(document)'}: string holds {bad}; refused"], code="bad_encoding"
                )
            continue
        if isinstance(value, dict):
            children: Any = value.items()
        elif isinstance(value, list | tuple):
            children = enumerate(value)
        else:
            continue
        if depth > max_depth:
            raise _too_deep(what, path or "(document)", max_depth)
        for key, child in children:
            if isinstance(value, dict):
                if not isinstance(key, str):
                    raise ValidationError(what, [f"{path or '(document)'}: key {describe(key)} is not a string"])
                bad = _bad_string(key)
                if bad:
                    raise ValidationError(
                        what, [f"{path or '(document)'}: a key holds {bad}; refused"], code="bad_encoding"
                    )
            if isinstance(child, dict | list | tuple | str):
                stack.append((child, _join(path, key), depth + 1))
            elif isinstance(child, float):
                _check_finite(child, what, _join(path, key))



def plain_copy(
    doc: Any, *, what: str, label: str = "(document)", max_depth: int, max_values: int | None = None,
    max_chars: int | None = None,
) -> Any:
    """A plain JSON copy of a value from a Python caller, checked as it is copied: what is checked is what is kept.

    The checks are :func:`check_tree`'s (bounded depth and size, string
    keys, no NUL or lone surrogate, finite numbers), plus a bound on the
    characters of all keys and strings together (``max_chars``: a caller's
    dict can repeat one huge string by reference, which no file of the same
    limit could), and integers within RFC 8785's range (``±(2**53 - 1)``;
    a larger one could never be canonicalised, for a digest or the audit
    chain). The copy holds exact types only: ``dict``, ``list``, ``str``,
    ``int``, ``float``, ``bool`` and ``None``.

    Each container is read once, so a mapping that answers differently the
    second time is copied as it was checked. Types are read from
    ``type(value)``, which an object cannot spoof (``isinstance`` trusts a
    ``__class__`` property). A ``str``, ``int`` or ``float`` subclass (an
    Enum with a ``str`` mixin, say) becomes the plain value of its
    characters or digits, as ``json.dumps`` would send it, read through the
    base type's own method, which no subclass overrides; any other mapping
    becomes a dict and a tuple or list subclass a list. Two keys whose
    characters are the same (possible with a key subclass that hashes
    differently) are refused as ``duplicate_key``; a value that is not JSON
    at all (a date, a set, an object), or a container that fails while it is
    read, is refused with its path. Every refusal is a
    :class:`ValidationError`; no message calls a caller's ``__repr__``.
    """
    root: list[Any] = [None]
    # Containers waiting to be filled: (source, path, depth, the copy, the slot the copy goes into).
    stack: list[tuple[Any, str, int, Any, Any]] = [(doc, "", 1, root, 0)]
    count = chars = 0
    limit = max_values if max_values is not None else sys.maxsize
    char_limit = max_chars if max_chars is not None else sys.maxsize
    while stack:
        value, path, depth, parent, slot = stack.pop()
        t = type(value)
        mapping = t is dict or (t is not list and issubclass(t, Mapping))
        if not mapping and t is not list and not issubclass(t, list | tuple):
            parent[slot] = _plain_scalar(value, what, path)
            continue
        where = path or "(document)"
        if depth > max_depth:
            raise _too_deep(what, where, max_depth)
        # One read of the container (at most one more item than the limit allows), counted before the copy.
        try:
            items = list(islice(value.items() if mapping else value, limit - count + 1))
            if mapping and t is not dict and not all(type(pair) is tuple and len(pair) == 2 for pair in items):
                raise TypeError("its items() did not give (key, value) pairs")
        except Exception as exc:  # noqa: BLE001 - whatever a caller's container raises is a refusal, not a crash.
            # Named by its type only: the exception's own text is the caller's code (it may raise or hang).
            kind = "object" if mapping else "array"
            raise ValidationError(
                what, [f"{where}: cannot be read as a JSON {kind} (it raised {shorten(type(exc).__name__, 40)})"]
            ) from None
        count += len(items)
        if count > limit:
            raise ValidationError(what, [f"{label}: more than {limit} values in one document"], code="input_too_large")
        out: Any
        children: Any
        if mapping:
            out, children = {}, []
            for key, child in items:
                k = type(key)
                if k is not str:
                    if not issubclass(k, str):
                        raise ValidationError(what, [f"{where}: key {_describe_key(key)} is not a string"])
                    key = str.__str__(key)
                chars += len(key)
                if chars > char_limit:
                    raise _too_many_chars(what, label, char_limit, f"a key of {where}")
                bad = _bad_string(key)
                if bad:
                    raise ValidationError(what, [f"{where}: a key holds {bad}; refused"], code="bad_encoding")
                if key in out:
                    raise ValidationError(
                        what, [f"{where}: duplicate key {describe(key)}"], code="duplicate_key"
                    )
                out[key] = None  # Holds the key's place, so the copy keeps the caller's order.
                children.append((key, child))
        else:
            out, children = [None] * len(items), enumerate(items)
        for at, child in children:
            c = type(child)
            if c is str:
                chars += len(child)
                if chars <= char_limit and not _BAD_CHARS.search(child):
                    out[at] = child
                    continue
            elif (c is int and -_SAFE_INT <= child <= _SAFE_INT or c is bool or child is None
                    or c is float and math.isfinite(child)):
                out[at] = child
                continue
            elif c is dict or c is list or issubclass(c, Mapping | list | tuple):
                stack.append((child, _join(path, at), depth + 1, out, at))
                continue
            if chars > char_limit:
                raise _too_many_chars(what, label, char_limit, _join(path, at))
            out[at] = _plain_scalar(child, what, _join(path, at))
            if type(out[at]) is str:
                chars += len(out[at])
        if chars > char_limit:
            # A str subclass's characters, counted after its copy.
            raise _too_many_chars(what, label, char_limit, where)
        parent[slot] = out
    return root[0]


#: The integers RFC 8785 (JCS) can write, and so an action digest can hold: ±(2**53 - 1).
_SAFE_INT = 2**53 - 1


def _too_many_chars(what: str, label: str, limit: int, where: str) -> ValidationError:
    return ValidationError(
        what, [f"{label}: more than {limit} characters in its keys and strings together, more than a document of "
               f"the byte limit can hold (the limit was passed at {where or '(document)'}); raise limits.{what}_bytes "
               "in hitlgate.yaml if this document is genuine"],
        code="input_too_large",
    )


def _describe_key(key: Any) -> str:
    """A non-string key for a message, without calling its own ``__repr__`` (which may hang or raise)."""
    t = type(key)
    if t is bool or key is None or t is float:
        return repr(key)
    if t is int:
        return repr(key) if key.bit_length() <= 64 else f"(a {key.bit_length()}-bit integer)"
    return f"of type {shorten(t.__name__, 40)}"


def _plain_scalar(value: Any, what: str, path: str) -> Any:
    """The plain JSON scalar ``value`` stands for (see :func:`plain_copy`), or a refusal naming its path."""
    t = type(value)
    where = path or "(document)"
    if issubclass(t, str):
        plain = value if t is str else str.__str__(value)
        bad = _bad_string(plain)
        if bad:
            raise ValidationError(what, [f"{where}: string holds {bad}; refused"], code="bad_encoding")
        return plain
    if value is None or t is bool:
        return value
    if issubclass(t, int) and t is not bool:
        number = value if t is int else int.__int__(value)
        if not -_SAFE_INT <= number <= _SAFE_INT:
            raise ValidationError(
                what, [f"{where}: an integer of {number.bit_length()} bits is beyond ±(2**53 - 1), which canonical "
                       "JSON (RFC 8785, what digests and the audit chain are computed over) cannot hold; send it as "
                       "a string"]
            )
        return number
    if issubclass(t, float):
        real = value if t is float else float.__float__(value)
        _check_finite(real, what, path)
        return real
    raise ValidationError(what, [f"{where}: a value of type {shorten(t.__name__, 40)} is not JSON; refused"])


# -- YAML ----------------------------------------------------------------------

_Parser: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
_STR = "tag:yaml.org,2002:str"
_SCALAR_TAGS = {
    "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary",
}
_MAP_TAGS = {None, "!", "tag:yaml.org,2002:map"}
_SEQ_TAGS = {None, "!", "tag:yaml.org,2002:seq"}
_resolver = Resolver()
_constructor = SafeConstructor()


def _where(event: Any) -> str:
    mark = getattr(event, "start_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"


def _yaml_events(text: str) -> Iterator[Any]:
    loader = _Parser(text)
    try:
        while loader.check_event():
            yield loader.get_event()
    finally:
        loader.dispose()


def _scalar(event: Any, what: str, label: str) -> Any:
    tag = event.tag
    if tag is None and event.implicit[0]:
        tag = _resolver.resolve(ScalarNode, event.value, event.implicit)
    elif tag in (None, "!"):
        tag = _STR
    if tag == _STR:
        value = event.value
    elif tag in _SCALAR_TAGS:
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            value = _constructor.yaml_constructors[tag](_constructor, node)
        except (ValueError, yaml.YAMLError) as exc:
            raise ValidationError(
                what, [f"{label}: {_where(event)}: cannot read {describe(event.value)} as {tag.rsplit(':', 1)[-1]}: "
                       f"{shorten(str(exc), 120)}"]
            ) from None
    elif tag == "tag:yaml.org,2002:merge":
        raise ValidationError(
            what, [f"{label}: {_where(event)}: merge keys (<<) are not supported"], code="unsupported_yaml"
        )
    else:
        raise ValidationError(
            what, [f"{label}: {_where(event)}: the tag {describe(tag)} is not supported"], code="unsupported_yaml"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(
            what, [f"{label}: {_where(event)}: {describe(event.value)} is not a finite number; refused"]
        )
    if event.style == '"' and isinstance(value, str):
        # Only double-quoted scalars have escapes (\0, \ud800) that bypass the byte checks.
        bad = _bad_string(value)
        if bad:
            raise ValidationError(
                what, [f"{label}: {_where(event)}: string holds {bad}; refused"], code="bad_encoding"
            )
    return value


def load_yaml(data: bytes | str, *, what: str, label: str, max_depth: int) -> Any:
    """Parse one YAML document from outside (see module docstring); None for an empty file.

    Parsing uses libyaml's C parser where available. The document is built
    from its event stream with an explicit stack, so nesting costs no
    recursion and an alias is refused the moment it appears, before
    anything is expanded.
    """
    text = _as_text(data, what=what, label=label)
    # Each open collection: [container, pending key (a one-tuple) or None].
    stack: list[list[Any]] = []
    root: Any = None
    documents = 0
    try:
        for event in _yaml_events(text):
            kind = type(event)
            if kind is _ev.AliasEvent:
                raise ValidationError(
                    what, [f"{label}: {_where(event)}: YAML aliases (*{shorten(str(event.anchor), 40)}) are not "
                           "allowed; write the value out"],
                    code="yaml_alias",
                )
            if kind is _ev.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise ValidationError(
                        what, [f"{label}: {_where(event)}: more than one YAML document in one file"],
                        code="unsupported_yaml",
                    )
                continue
            if kind not in (_ev.ScalarEvent, _ev.MappingStartEvent, _ev.SequenceStartEvent,
                            _ev.MappingEndEvent, _ev.SequenceEndEvent):
                continue
            anchor = getattr(event, "anchor", None)
            if anchor is not None:
                raise ValidationError(
                    what, [f"{label}: {_where(event)}: YAML anchors (&{shorten(str(anchor), 40)}) are not allowed"],
                    code="yaml_alias",
                )
            value: Any
            if kind is _ev.ScalarEvent:
                value = _scalar(event, what, label)
            elif kind is _ev.MappingStartEvent or kind is _ev.SequenceStartEvent:
                tags = _MAP_TAGS if kind is _ev.MappingStartEvent else _SEQ_TAGS
                if event.tag not in tags:
                    raise ValidationError(
                        what, [f"{label}: {_where(event)}: the tag {describe(event.tag)} is not supported"],
                        code="unsupported_yaml",
                    )
                if len(stack) >= max_depth:
                    raise ValidationError(
                        what, [f"{label}: {_where(event)}: nested deeper than {max_depth} levels (limits.max_depth)"],
                        code="too_deep",
                    )
                stack.append([{} if kind is _ev.MappingStartEvent else [], None, event])
                continue
            else:
                value = stack.pop()[0]
            if not stack:
                root = value
                continue
            top = stack[-1]
            container = top[0]
            if isinstance(container, list):
                container.append(value)
            elif top[1] is None:
                if isinstance(value, dict | list):
                    raise ValidationError(
                        what, [f"{label}: {_where(event)}: a mapping key must be a plain value"]
                    )
                top[1] = (value, event)
            else:
                key, key_event = top[1]
                if key in container:
                    raise ValidationError(
                        what, [f"{label}: {_where(key_event)}: duplicate key {describe(key)}"], code="duplicate_key"
                    )
                container[key] = value
                top[1] = None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if "maximum nesting depth" in str(problem):
            # PyYAML 6.0.4's scanner has a nesting limit of its own, far above ours, which it can
            # meet while scanning ahead of the events counted above ("[[[[..."): the same refusal.
            at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
            raise ValidationError(
                what, [f"{label}: {at}: nested deeper than {max_depth} levels (limits.max_depth)"], code="too_deep"
            ) from None
        raise ValidationError(what, [f"{label}: malformed YAML{where}: {shorten(str(problem), 200)}"]) from None
    except TypeError as exc:
        # An unhashable key, e.g. a timestamp mixed with other types is fine, a set is not.
        raise ValidationError(what, [f"{label}: {shorten(str(exc), 200)}"]) from None
    return root


class LimitedLines:
    """Iterate the lines of a binary stream as text, refusing a line over the limit or not UTF-8.

    For line-oriented files that may be large in total (an audit export)
    but whose every line is small: memory stays bounded by one line.
    """

    def __init__(
        self, fh: IO[bytes], *, max_line_bytes: int, what: str, label: str, limit_key: str,
        max_json_depth: int | None = None,
    ) -> None:
        self._fh = fh
        self._max = max_line_bytes
        self._what = what
        self._label = label
        self._limit_key = limit_key
        # For JSON Lines: a line nested deeper than this is refused before any parser recurses into it.
        self._max_depth = max_json_depth

    def __iter__(self) -> Iterator[str]:
        offset = 0
        lineno = 0
        while True:
            raw = self._fh.readline(self._max + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > self._max and not raw.endswith(b"\n"):
                raise _too_large(self._what, f"{self._label} line {lineno}", self._max, self._limit_key, None)
            text = decode_utf8(
                raw, what=self._what, label=f"{self._label} line {lineno}", base_offset=offset, one_line=True
            )
            if self._max_depth is not None and json_depth(text) > self._max_depth:
                raise _too_deep(self._what, f"{self._label} line {lineno}", self._max_depth)
            yield text
            offset += len(raw)

"""JSON Schema validation of every document that enters the engine.

Validation happens before anything else. All problems are reported at once,
each naming the JSON path of the offending field, so a user can fix a
document in one pass.

Two validators, one schema: ``fastjsonschema`` compiles each schema into
Python code and answers "valid?" in a few microseconds, which keeps
validation off the decision hot path; only a document it rejects goes
through ``jsonschema``, the reference implementation, which lists every
problem with its path. If the two ever disagree on a rejected document, the
document is still rejected (fail closed). An inventory of 10^5 records is
first offered to ``jsonschema_rs`` (compiled Rust, 0.13 s where
fastjsonschema takes 5.9 s); what it does not accept takes the same path.

Messages never echo a whole value. ``jsonschema`` writes ``repr(instance)``
into most of its messages, eagerly, which for a hostile document means a
20 MB string in the message or minutes spent on the repr of a huge list; so
the keywords whose message shows the instance are replaced by ones that
describe it in at most 80 characters (:func:`hitlgate.engine._safeparse.describe`),
every other message is cut to a bounded length, and at most
:data:`MAX_PROBLEMS` problems are listed.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from itertools import islice
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError as _SchemaError

from hitlgate.engine._resources import schema_path
from hitlgate.engine._safeparse import ECHO_CHARS, describe, shorten
from hitlgate.errors import ValidationError

SCHEMAS = ("proposal", "inventory", "decision", "config")

#: At most this many problems are listed for one document (the rest are counted).
MAX_PROBLEMS = 50
#: Longest message line, whatever a keyword wrote.
_MAX_MESSAGE = 300
#: ``$comment`` of a schema level that only admits scalars because the value is nested too deep.
DEPTH_LIMIT_COMMENT = "depth-limit"

_Keyword = Callable[[Any, Any, Any, Mapping[str, Any]], Iterator[_SchemaError]]


def _type(v: Any, types: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[_SchemaError]:
    types = types if isinstance(types, list) else [types]
    if not any(v.is_type(instance, t) for t in types):
        if schema.get("$comment") == DEPTH_LIMIT_COMMENT:
            yield _SchemaError("nested too deep: at this depth only strings, numbers, booleans and null are allowed")
        else:
            shown = json.dumps(instance) if isinstance(instance, bool) or instance is None else describe(instance)
            hint = ""
            if types == ["string"] and (isinstance(instance, bool | int | float) or instance is None):
                # YAML reads `pii: true`, `tier: 1` or `owner: null` as a boolean, number or null.
                hint = f" (quote it to make it text: \"{shown}\")"
            yield _SchemaError(f"{shown} is not of type {', '.join(map(repr, types))}{hint}")


def _json_key(value: Any) -> Any:
    """A hashable key under which two values are equal exactly when JSON Schema says so."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    try:
        return ("json", json.dumps(value, sort_keys=True, default=repr))
    except (TypeError, ValueError, RecursionError):
        return ("id", id(value))


def _enum(v: Any, enums: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[_SchemaError]:
    if _json_key(instance) not in {_json_key(e) for e in enums}:
        shown = describe(list(enums)) if len(enums) > 12 else repr(enums)
        yield _SchemaError(f"{describe(instance)} is not one of {shown}")


def _const(v: Any, const: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[_SchemaError]:
    if _json_key(instance) != _json_key(const):
        yield _SchemaError(f"{describe(const)} was expected")


def _additional(v: Any, ap: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[_SchemaError]:
    if not v.is_type(instance, "object"):
        return
    props = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [
        k for k in instance
        if k not in props and not any(v.evolve(schema={"pattern": p}).is_valid(k) for p in patterns)
    ]
    if v.is_type(ap, "object"):
        for extra in extras:
            yield from v.descend(instance[extra], ap, path=extra)
    elif not ap and extras:
        shown = ", ".join(describe(k) for k in sorted(extras, key=str)[:5])
        more = f" and {len(extras) - 5} more" if len(extras) > 5 else ""
        verb = "was" if len(extras) == 1 else "were"
        # A misspelt field ("bakend") is the usual cause: name the field it was probably meant to be.
        hints = [f"{describe(k)}: did you mean {describe(close[0])}?" for k in sorted(extras, key=str)[:5]
                 if isinstance(k, str) and len(k) <= 100
                 and (close := difflib.get_close_matches(k, [str(p) for p in props], n=1, cutoff=0.75))]
        hint = f"; {'; '.join(hints)}" if hints else ""
        yield _SchemaError(f"Additional properties are not allowed ({shown}{more} {verb} unexpected){hint}")


def _size(kind: str, word: str, bigger: bool) -> _Keyword:
    def check(v: Any, bound: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[_SchemaError]:
        if v.is_type(instance, kind) and (len(instance) > bound if bigger else len(instance) < bound):
            relation = "more" if bigger else "fewer"
            limit = "at most" if bigger else "at least"
            yield _SchemaError(
                f"has {len(instance)} {word}, {relation} than allowed ({limit} {bound})"
            )
    return check


def _unique(v: Any, unique: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[_SchemaError]:
    if unique and v.is_type(instance, "array"):
        seen: set[Any] = set()
        for item in instance:
            key = _json_key(item)
            if key in seen:
                yield _SchemaError(f"has non-unique elements ({describe(item)} appears twice)")
                return
            seen.add(key)


def _combinator(word: str, exactly_one: bool) -> _Keyword:
    def check(v: Any, subschemas: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[_SchemaError]:
        errors: list[_SchemaError] = []
        valid = 0
        for index, sub in enumerate(subschemas):
            errs = list(v.descend(instance, sub, schema_path=index))
            if errs:
                errors.extend(errs)
            else:
                valid += 1
                if not exactly_one:
                    return
        if valid == 0:
            yield _SchemaError(f"{describe(instance)} is not valid under any of the given schemas", context=errors)
        elif exactly_one and valid > 1:
            yield _SchemaError(f"{describe(instance)} is valid under more than one of the given schemas ({word})")
    return check


def _not(v: Any, not_schema: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[_SchemaError]:
    if v.evolve(schema=not_schema).is_valid(instance):
        yield _SchemaError(f"{describe(instance)} should not be valid under {describe(not_schema)}")


@cache
def _end_anchored(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled with ECMA-262's ``$`` (the end of the text, as in JSON Schema), not Python's.

    Python's ``$`` also matches before a final newline, so ``"svc-1\\n"``
    would match ``^[a-z0-9-]+$``; fastjsonschema and jsonschema_rs refuse it.
    Every ``$`` outside a character class and not escaped becomes ``\\Z``.
    """
    out: list[str] = []
    escaped = in_class = False
    opened = -1  # Where the current class's members start: a "]" there is a member (Python's rule).
    for i, c in enumerate(pattern):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif in_class:
            if c == "^" and i == opened:
                opened += 1
            elif c == "]" and i != opened:
                in_class = False
        elif c == "[":
            in_class, opened = True, i + 1
        elif c == "$":
            out.append("\\Z")
            continue
        out.append(c)
    return re.compile("".join(out))


def _pattern(v: Any, pattern: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[_SchemaError]:
    # jsonschema's own keyword, with the end of the text where JSON Schema puts it (see _end_anchored).
    if isinstance(instance, str) and not _end_anchored(pattern).search(instance):
        yield _SchemaError(f"{instance!r} does not match {pattern!r}")


def _string_keyword(original: _Keyword, keyword: str) -> _Keyword:
    # minLength, maxLength, pattern, format: the message starts with repr of a
    # string that may be megabytes long; say how long it is instead.
    def check(v: Any, value: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[_SchemaError]:
        for err in original(v, value, instance, schema):
            hint = schema.get("x-pattern-hint")
            if keyword == "pattern" and isinstance(hint, str):
                # A regular expression tells a person little; the schema says in words what it wants.
                err.message = f"{describe(instance)} is not {hint}"
            elif isinstance(instance, str) and len(instance) > ECHO_CHARS:
                err.message = err.message.replace(repr(instance), f"{describe(instance)} ({len(instance)} characters)")
            yield err
    return check


def _bounded(original: _Keyword) -> _Keyword:
    def check(v: Any, value: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[_SchemaError]:
        for err in original(v, value, instance, schema):
            err.message = shorten(err.message, _MAX_MESSAGE)
            yield err
    return check


def _safe_keywords() -> dict[str, _Keyword]:
    base: dict[str, _Keyword] = {**Draft202012Validator.VALIDATORS, "pattern": _pattern}
    out = {name: _bounded(fn) for name, fn in base.items()}
    for name in ("minLength", "maxLength", "pattern", "format"):
        out[name] = _bounded(_string_keyword(base[name], name))
    out.update({
        "type": _type,
        "enum": _enum,
        "const": _const,
        "additionalProperties": _additional,
        "maxItems": _size("array", "items", True),
        "minItems": _size("array", "items", False),
        "maxProperties": _size("object", "properties", True),
        "minProperties": _size("object", "properties", False),
        "uniqueItems": _unique,
        "oneOf": _combinator("oneOf", True),
        "anyOf": _combinator("anyOf", False),
        "not": _not,
    })
    # Keywords that only descend (properties, items, $ref, ...) keep the
    # originals: wrapping them would shorten their children's messages twice.
    for name in ("properties", "items", "prefixItems", "$ref", "$dynamicRef", "allOf", "if", "propertyNames",
                 "patternProperties", "dependentSchemas", "contains", "unevaluatedItems", "unevaluatedProperties"):
        out[name] = base[name]
    return out


_SafeValidator = validators.extend(Draft202012Validator, validators=_safe_keywords())


@cache
def validator(name: str) -> Draft202012Validator:
    """Return the compiled validator of the bundled schema ``name`` (cached).

    Its messages describe offending values in a few dozen characters (see
    the module docstring); validation itself is Draft 2020-12 unchanged.
    """
    if name not in SCHEMAS:
        raise ValueError(f"unknown schema {name!r}")
    with schema_path(name).open(encoding="utf-8") as fh:
        schema = json.load(fh)
    Draft202012Validator.check_schema(schema)
    checker: Draft202012Validator = _SafeValidator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return checker


@cache
def _fast(name: str) -> Any:
    with schema_path(name).open(encoding="utf-8") as fh:
        return fastjsonschema.compile(json.load(fh))


#: Schemas checked by the compiled Rust validator first, when it is installed:
#: inventories (10^5 records, ~40x faster than fastjsonschema) and decisions
#: (~10x: each decision read back from the store is checked, so a listing
#: page of a hundred paid mostly for validation). Both patterns in the
#: decision schema are anchored, and Rust's ``$`` is the end of the text, as
#: fastjsonschema's (``\Z``) and ours (:func:`_end_anchored`) are. Proposals
#: are offered to it too, but only as the exact-type copy ``plain_copy`` makes
#: (``plain=True``; see :func:`_bulk_valid`).
_BULK = frozenset({"inventory", "decision"})


@cache
def _bulk(name: str) -> Any:
    """``jsonschema_rs``'s validator for ``name``, or None when the package is missing."""
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - a dependency; fastjsonschema is the fallback.
        return None
    with schema_path(name).open(encoding="utf-8") as fh:
        return jsonschema_rs.validator_for(json.load(fh))


def _bulk_valid(name: str, document: Any, *, plain: bool = False) -> bool:
    """Whether the Rust validator accepts ``document``; False when unsure (not installed, or it failed).

    Asked only for the documents in :data:`_BULK`, or when the caller says
    ``document`` holds exact JSON types only (``plain``: a copy made by
    :func:`~hitlgate.engine._safeparse.plain_copy`). ``jsonschema_rs`` reads
    an Enum member by its ``.value``, where the Python validators and the
    engine see the member itself, so a caller's own objects are never
    offered to it.
    """
    checker = _bulk(name) if plain or name in _BULK else None
    if checker is None:
        return False
    try:
        return bool(checker.is_valid(document))
    except Exception:  # noqa: BLE001 - a value it cannot convert (a huge int): let the Python validators decide.
        return False


def action_types() -> tuple[str, ...]:
    """The action catalogue: the ``action.type`` enum of the proposal schema (its single source)."""
    return tuple(validator("proposal").schema["$defs"]["action"]["properties"]["type"]["enum"])


def builtin_risk_factors() -> tuple[str, ...]:
    """The built-in risk factors: ``$defs.builtin_risk_factor`` of the decision schema (their single source).

    A project adds its own with ``risk_factors`` in ``hitlgate.yaml``; the
    engine checks a decision's factors against both at run time.
    """
    return tuple(validator("decision").schema["$defs"]["builtin_risk_factor"]["enum"])


def _path(err: _SchemaError) -> str:
    parts: list[str] = []
    for p in err.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else (f".{p}" if parts else str(p)))
    return "".join(parts) or "(document)"


def _message(err: _SchemaError) -> str:
    # For additionalProperties the path is the parent object; the message
    # already names the unexpected field, so keep it as jsonschema words it.
    if err.validator == "required":
        # Named at the missing field itself ("justification: ..."), where a reader looks for it.
        missing = re.fullmatch(r"'([^']*)' is a required property", err.message)
        if missing is not None:
            parent = _path(err)
            name = missing.group(1) if parent == "(document)" else f"{parent}.{missing.group(1)}"
            return f"{name}: required field is missing"
    return f"{_path(err)}: {err.message}"


def problems(name: str, document: Any) -> list[str]:
    """Return one message per schema violation of ``document`` (empty when valid).

    At most :data:`MAX_PROBLEMS` are listed; a last line counts the rest
    (the count stops at ten times that, so a hostile document cannot make
    the count itself expensive).
    """
    found = list(islice(validator(name).iter_errors(document), MAX_PROBLEMS * 10 + 1))
    errors = sorted(found, key=lambda e: list(map(str, e.path)))
    out: list[str] = []
    for err in errors[:MAX_PROBLEMS]:
        if err.context and err.validator in ("oneOf", "anyOf"):
            # Name the most specific sub-error rather than "is not valid under any":
            # the one deepest into the document (the branch that matched
            # furthest), then the one nearest the top of the schema.
            best = max(err.context, key=lambda e: (len(e.absolute_path), -len(e.schema_path)))
            out.append(shorten(f"{_path(best)}: {best.message}", _MAX_MESSAGE + 100))
        else:
            out.append(shorten(_message(err), _MAX_MESSAGE + 100))
    if len(errors) > MAX_PROBLEMS:
        more = f"{len(errors) - MAX_PROBLEMS}" + ("+" if len(found) > MAX_PROBLEMS * 10 else "")
        out.append(f"... and {more} more problem(s)")
    return out


def check(name: str, document: Any, *, plain: bool = False) -> list[str]:
    """Like :func:`problems`, but a valid document costs only the compiled validator (microseconds).

    A large document (an inventory), or one the caller says holds exact
    JSON types only (``plain``), is first offered to ``jsonschema_rs``;
    only what it does not accept goes through the Python validators, so a
    document is accepted only when a validator says it is valid.
    """
    if _bulk_valid(name, document, plain=plain):
        return []
    try:
        _fast(name)(document)
        return []
    except fastjsonschema.JsonSchemaException as exc:
        fast_problem = shorten(str(exc), _MAX_MESSAGE)
    return problems(name, document) or [fast_problem]


def validate(name: str, document: Any, *, what: str | None = None, plain: bool = False) -> None:
    """Raise :class:`ValidationError` listing every problem of ``document`` (``plain``: see :func:`check`)."""
    found = check(name, document, plain=plain)
    if found:
        if name == "proposal" and isinstance(document, Mapping) and "inventory" in document:
            # The one extra field an agent sends on purpose: say why it is refused.
            found = [*found, "inventory: an agent may not send facts about its target; the engine looks them "
                             "up in its own inventory (leave the field out)"]
        raise ValidationError(what or name, found)


def require_mapping(document: Any, what: str) -> Mapping[str, Any]:
    """Raise a :class:`ValidationError` unless ``document`` is a JSON object."""
    if not isinstance(document, Mapping):
        raise ValidationError(what, [f"(document): expected a JSON object, got {type(document).__name__}"])
    return document

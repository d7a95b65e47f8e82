"""JSON Schema validation of every document that enters the engine.

Validation happens before anything else. All problems are reported at once,
each naming the JSON path of the offending field, so a user can fix a
document in one pass.

Two validators, one schema: ``fastjsonschema`` compiles each schema into
Python code and answers "valid?" in a few microseconds, which keeps
validation off the decision hot path; only a document it rejects goes
through ``jsonschema``, the reference implementation, which lists every
problem with its path. If the two ever disagree on a rejected document, the
document is still rejected (fail closed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as _SchemaError

from hitlgate.engine._resources import schema_path
from hitlgate.errors import ValidationError

SCHEMAS = ("proposal", "inventory", "decision", "config")


@cache
def validator(name: str) -> Draft202012Validator:
    """Return the compiled validator of the bundled schema ``name`` (cached)."""
    if name not in SCHEMAS:
        raise ValueError(f"unknown schema {name!r}")
    with schema_path(name).open(encoding="utf-8") as fh:
        schema = json.load(fh)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@cache
def _fast(name: str) -> Any:
    with schema_path(name).open(encoding="utf-8") as fh:
        return fastjsonschema.compile(json.load(fh))


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
    return f"{_path(err)}: {err.message}"


def problems(name: str, document: Any) -> list[str]:
    """Return one message per schema violation of ``document`` (empty when valid)."""
    errors = sorted(validator(name).iter_errors(document), key=lambda e: list(map(str, e.path)))
    out: list[str] = []
    for err in errors:
        if err.context and err.validator in ("oneOf", "anyOf"):
            # Name the most specific sub-error rather than "is not valid under any".
            best = min(err.context, key=lambda e: len(e.schema_path))
            out.append(f"{_path(err)}: {best.message}")
        else:
            out.append(_message(err))
    return out


def validate(name: str, document: Any, *, what: str | None = None) -> None:
    """Raise :class:`ValidationError` listing every problem of ``document``."""
    try:
        _fast(name)(document)
        return
    except fastjsonschema.JsonSchemaException as exc:
        fast_problem = str(exc)
    found = problems(name, document)
    raise ValidationError(what or name, found or [fast_problem])


def require_mapping(document: Any, what: str) -> Mapping[str, Any]:
    """Raise a :class:`ValidationError` unless ``document`` is a JSON object."""
    if not isinstance(document, Mapping):
        raise ValidationError(what, [f"(document): expected a JSON object, got {type(document).__name__}"])
    return document

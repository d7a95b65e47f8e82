"""The OpenAPI document of the service: FastAPI's route table plus the engine's own JSON Schemas.

Request bodies are read and validated by the engine (strict parser, byte and
depth limits, the proposal JSON Schema), not by pydantic models, so the
document declares them from the same schema files the engine validates
with (``schemas/*.schema.json``, their ``$defs`` moved under
``components/schemas``). The committed copy is ``schemas/openapi.json``
(``hitlgate serve --openapi`` prints it; a test fails when they drift).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hitlgate.engine.decide import schemas

_REF = "#/components/schemas/"


def request_body(name: str) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body of the component ``name``."""
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": {"$ref": _REF + name}}}}}


def responses(
    status: int, description: str, schema: dict[str, Any], *, errors: tuple[int, ...] | None = None,
    extra: dict[int, str] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: its success document and the error documents it may answer with."""
    out: dict[int | str, dict[str, Any]] = {
        status: {"description": description, "content": {"application/json": {"schema": schema}}}
    }
    for code, text in (extra or {}).items():
        out[code] = {"description": text, "content": {"application/json": {"schema": schema}}}
    for code in errors if errors is not None else ():
        out[code] = {"description": "error", "content": {"application/json": {"schema": {"$ref": _REF + "Error"}}}}
    return out


def _moved(schema: dict[str, Any], prefix: str, components: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` moved into ``components`` as ``<prefix>_<name>`` and its refs rewritten."""
    doc = copy.deepcopy(schema)
    for key in ("$schema", "$id"):
        doc.pop(key, None)
    defs = doc.pop("$defs", {})
    text = json.dumps(doc)
    for name in defs:
        text = text.replace(f'"#/$defs/{name}"', f'"{_REF}{prefix}_{name}"')
    for name, sub in defs.items():
        sub_text = json.dumps(sub)
        for other in defs:
            sub_text = sub_text.replace(f'"#/$defs/{other}"', f'"{_REF}{prefix}_{other}"')
        components[f"{prefix}_{name}"] = json.loads(sub_text)
    result: dict[str, Any] = json.loads(text)
    return result


_B64: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 8192}


def _components(error_schema: dict[str, Any]) -> dict[str, Any]:
    comps: dict[str, Any] = {}
    proposal = _moved(schemas.validator("proposal").schema, "Proposal", comps)
    # The requester is the API key's principal: the body may leave it out.
    proposal["required"] = [r for r in proposal["required"] if r != "requester"]
    requester = proposal["properties"]["requester"]
    requester["required"] = []
    requester["description"] = "Optional: id must be the API key's principal if given; kind defaults by role."
    proposal["description"] = ("A proposal (schemas/proposal.schema.json). requester may be left out: the requester is "
                               "always the API key's principal, and a different requester.id is refused.")
    comps["Proposal"] = proposal
    comps["Decision"] = _moved(schemas.validator("decision").schema, "Decision", comps)
    text = {"type": "string", "minLength": 1, "maxLength": 200}
    comps["SignedStatement"] = {
        "type": "object", "additionalProperties": False, "required": ["statement", "signature"],
        "properties": {
            "statement": {
                "type": "object", "additionalProperties": False,
                "required": ["request_id", "action_digest", "verdict", "approver", "at"],
                "properties": {"request_id": text, "action_digest": text, "verdict": {"enum": ["approve", "reject"]},
                               "approver": text, "at": {"type": "string", "description": "RFC 3339, UTC"},
                               "reason": {"type": "string", "minLength": 1, "maxLength": 1000,
                                          "description": "why (optional; signed when present)"}},
            },
            "signature": {"oneOf": [
                {"type": "string", "description": "Ed25519 signature (base64url) of the RFC 8785 statement"},
                {"type": "object", "additionalProperties": False,
                 "required": ["type", "credential_id", "authenticator_data", "client_data_json", "signature"],
                 "properties": {"type": {"const": "webauthn"}, **{k: _B64 for k in (
                     "credential_id", "authenticator_data", "client_data_json", "signature")}},
                 "description": "a passkey's whole WebAuthn assertion (base64url parts) over the challenge "
                                "SHA-256(RFC 8785 statement)"},
            ]},
        },
        "description": "A statement signed with the approver's registered Ed25519 key (hitlgate approve --out), "
                       "or with one of their enrolled passkeys.",
    }
    comps["VerifyRequest"] = {
        "type": "object", "additionalProperties": False, "required": ["warrant", "action"],
        "properties": {"warrant": {"type": "string", "description": "the compact JWS"},
                       "action": {"type": "object", "description": "the action about to run (or a whole proposal)"},
                       "consume": {"type": "boolean", "default": False}},
    }
    comps["Outcome"] = {
        "type": "object", "additionalProperties": False, "required": ["jti", "outcome"],
        "properties": {"jti": {"type": "string"}, "outcome": {"enum": ["executed", "failed", "unknown"]},
                       "detail": {"type": "string", "maxLength": 2000}},
    }
    comps["Request"] = {
        "type": "object",
        "required": ["id", "status", "tier", "requester", "action", "action_digest", "decision", "votes", "warrant"],
        "properties": {"id": {"type": "string"}, "status": {"type": "string"}, "tier": {"type": "string"},
                       "requester": {"type": "string"}, "action": {"type": "object"},
                       "action_digest": {"type": "string"}, "decision": {"$ref": _REF + "Decision"},
                       "votes": {"type": "array"}, "quorum_progress": {"type": "object"},
                       "warrant": {"type": "object", "required": ["state"]}},
    }
    comps["RequestPage"] = {
        "type": "object", "required": ["requests", "next_cursor"],
        "properties": {"requests": {"type": "array", "items": {"$ref": _REF + "Request"}},
                       "next_cursor": {"type": ["string", "null"]}},
    }
    comps["Warrant"] = {
        "type": "object", "required": ["request_id", "jti", "kid", "token", "issued_at", "expires_at"],
        "properties": {k: {"type": "string"} for k in ("request_id", "jti", "kid", "token", "issued_at", "expires_at")},
    }
    comps["VerifyResult"] = {
        "type": "object", "required": ["valid", "consumed", "request_id", "jti", "tier", "action_digest"],
        "properties": {"valid": {"const": True}, "consumed": {"type": "boolean"}, "request_id": {"type": "string"},
                       "jti": {"type": "string"}, "tier": {"type": "string"}, "action_digest": {"type": "string"},
                       "expires_at": {"type": "string"}, "approvals": {"type": "array"}, "kid": {"type": "string"}},
    }
    comps["Error"] = error_schema
    return comps


def build(app: FastAPI, error_schema: dict[str, Any], error_statuses: tuple[int, ...]) -> dict[str, Any]:
    """The complete OpenAPI document of ``app``."""
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    comps = doc.setdefault("components", {})
    found = comps.setdefault("schemas", {})
    # Query and header problems answer 400 with the error document, never FastAPI's 422.
    for name in ("HTTPValidationError", "ValidationError"):
        found.pop(name, None)
    found.update(_components(error_schema))
    comps["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "an API key from `hitlgate apikey create`"}}
    error = {"description": "error", "content": {"application/json": {"schema": {"$ref": _REF + "Error"}}}}
    for path, ops in doc["paths"].items():
        for op in ops.values():
            op["responses"].pop("422", None)
            if path.startswith("/v1/"):
                op["security"] = [{"apiKey": []}]
                for status in error_statuses:
                    op["responses"].setdefault(str(status), error)
            if op["responses"].get("200", {}).get("content", {}).get("application/json", {}).get("schema") == {}:
                del op["responses"]["200"]
    return doc


def install(app: FastAPI, error_schema: dict[str, Any], error_statuses: tuple[int, ...]) -> None:
    """Make ``app`` serve :func:`build`'s document at its ``openapi_url``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app, error_schema, error_statuses)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""Signed approval statements.

An approver approves or rejects one request by signing a :class:`Statement`
``{request_id, action_digest, verdict, approver, at}`` with their own Ed25519
key. The signed bytes are the RFC 8785 canonical JSON of the statement, so
the signature covers exactly the fields and nothing the transport adds.

Parsing is strict so that a statement has one spelling: ``at`` must be RFC
3339 UTC with whole seconds and a ``Z`` (``2025-01-31T12:00:00Z``), the
digest must be ``sha256:`` + 64 lowercase hex digits, and unknown fields are
refused. The statement binds the *action digest*, so an approval of one
action can never be replayed for another, even under the same request id.
An optional ``reason`` (why the approver decided) is part of the signed
bytes when present and left out of them when empty, so statements without
one keep the spelling they always had.

The signature is either an Ed25519 signature (base64url) over the canonical
bytes, or a whole WebAuthn assertion (a passkey) whose challenge is the
SHA-256 of those bytes (:mod:`hitlgate.engine.approve._webauthn`).

This module only checks signatures. Whether the key is registered to the
approver, whether the approver is eligible, not the requester, and not
counted twice is the quorum's job (:mod:`hitlgate.engine.approve.quorum`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hitlgate.engine._canonical import dumps as canonical_dumps
from hitlgate.engine._safeparse import parse_json
from hitlgate.engine.keys.keyring import b64url_decode, b64url_encode
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits
from hitlgate.errors import ApprovalError, ValidationError

Verdict = Literal["approve", "reject"]
VERDICTS: tuple[str, ...] = ("approve", "reject")

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_STATEMENT_FIELDS = frozenset({"request_id", "action_digest", "verdict", "approver", "at"})
_OPTIONAL_FIELDS = frozenset({"reason"})
#: A reason longer than this is an essay, not a reason; refusing it bounds statements and log lines.
MAX_REASON_LENGTH = 1000
_SIGNED_FIELDS = frozenset({"statement", "signature"})
#: Identifiers longer than this are not ids; refusing them bounds log lines.
MAX_ID_LENGTH = 256

_WHAT = "approval statement"


def format_time(at: datetime) -> str:
    """RFC 3339 UTC with whole seconds and ``Z``: the one accepted spelling."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, field: str, what: str = _WHAT) -> datetime:
    """Parse :func:`format_time` output strictly; ``ValidationError`` names ``field``."""
    if not isinstance(text, str) or _TIME_RE.fullmatch(text) is None:
        raise ValidationError(what, [f"{field}: must be an RFC 3339 UTC time like 2025-01-31T12:00:00Z"])
    try:
        # _TIME_RE pins the spelling; fromisoformat reads it (Z as UTC) at a
        # tenth of strptime's cost, and still refuses impossible dates.
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(what, [f"{field}: not a valid date and time ({exc})"]) from exc


def _plain_str_field(obj: Any, name: str) -> None:
    """Replace a ``str`` subclass in field ``name`` of the frozen ``obj`` by the plain string of its characters."""
    value = getattr(obj, name)
    kind = type(value)
    if kind is not str and issubclass(kind, str):
        object.__setattr__(obj, name, str.__str__(value))


def _check_id(value: Any, field: str) -> None:
    if type(value) is not str or not value or len(value) > MAX_ID_LENGTH:
        raise ValidationError(_WHAT, [f"{field}: must be a non-empty string of at most {MAX_ID_LENGTH} characters"])
    if not value.isprintable():
        raise ValidationError(_WHAT, [f"{field}: must not contain control characters"])


#: Characters a reason may hold although ``str.isprintable`` says no: the newline, and the zero-width
#: non-joiner and joiner that Persian, Hindi and emoji sequences (👩‍💻) need. Every other control or format
#: character is refused (escape sequences, bidirectional overrides).
_JOINERS = frozenset("\n\u200c\u200d")


def check_reason(reason: Any) -> None:
    """Refuse ``reason`` as an approval's reason (:class:`ValidationError` naming ``reason``) unless it may be signed.

    The one rule for every way a vote is made (key file, HTTP API, console):
    a string of at most :data:`MAX_REASON_LENGTH` characters with no control
    or format character but the newline and the zero-width (non-)joiner.
    """
    if type(reason) is not str or len(reason) > MAX_REASON_LENGTH:
        raise ValidationError(_WHAT, [f"reason: must be a string of at most {MAX_REASON_LENGTH} characters"])
    if any(not ch.isprintable() and ch not in _JOINERS for ch in reason):
        raise ValidationError(_WHAT, ["reason: must not contain control characters other than newlines"])


@dataclass(frozen=True)
class Statement:
    """One approver's verdict on one request and one exact action."""

    request_id: str
    action_digest: str
    verdict: Verdict
    approver: str
    at: datetime
    #: Why the approver decided (optional; signed when present).
    reason: str = ""

    def __post_init__(self) -> None:
        # A str subclass (a str Enum, or one overriding isprintable/__len__) is kept as its characters, and
        # the checks below read those: what is checked is what is signed and stored.
        for name in ("request_id", "action_digest", "verdict", "approver", "reason"):
            _plain_str_field(self, name)
        if type(self.at) is not datetime and issubclass(type(self.at), datetime):
            # Likewise a datetime subclass: kept as the exact datetime its fields spell (read by the base
            # type's own isoformat), so the time checked is the time signed.
            try:
                object.__setattr__(self, "at", datetime.fromisoformat(datetime.isoformat(self.at)))
            except Exception:  # noqa: BLE001 - a caller's tzinfo may raise anything: a bad field, not a crash.
                raise ValidationError(_WHAT, ["at: must be a timezone-aware UTC datetime"]) from None
        _check_id(self.request_id, "request_id")
        check_reason(self.reason)
        _check_id(self.approver, "approver")
        if not isinstance(self.action_digest, str) or DIGEST_RE.fullmatch(self.action_digest) is None:
            raise ValidationError(_WHAT, ["action_digest: must be sha256: followed by 64 lowercase hex digits"])
        if self.verdict not in VERDICTS:
            raise ValidationError(_WHAT, [f"verdict: must be one of {list(VERDICTS)}, not {self.verdict!r}"])
        if not isinstance(self.at, datetime) or self.at.tzinfo is None or self.at.utcoffset() != timedelta(0):
            raise ValidationError(_WHAT, ["at: must be a timezone-aware UTC datetime"])
        if self.at.microsecond:
            # The signed form carries whole seconds; keeping sub-seconds here
            # would make the object differ from what was signed.
            object.__setattr__(self, "at", self.at.replace(microsecond=0))

    def to_dict(self) -> dict[str, str]:
        """JSON form; ``at`` in the one accepted RFC 3339 spelling; ``reason`` only when there is one."""
        out = {
            "request_id": self.request_id,
            "action_digest": self.action_digest,
            "verdict": self.verdict,
            "approver": self.approver,
            "at": format_time(self.at),
        }
        if self.reason:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, doc: Any) -> Statement:
        """Parse the JSON form strictly; :class:`ValidationError` names the bad field."""
        if not isinstance(doc, Mapping):
            raise ValidationError(_WHAT, ["(document): must be an object"])
        problems = [
            f"{k}: unknown field" for k in sorted(set(doc) - _STATEMENT_FIELDS - _OPTIONAL_FIELDS, key=str)
        ]
        problems += [f"{k}: required field is missing" for k in sorted(_STATEMENT_FIELDS - set(doc))]
        if problems:
            raise ValidationError(_WHAT, problems)
        for key in ("request_id", "action_digest", "verdict", "approver"):
            if not isinstance(doc[key], str):
                raise ValidationError(_WHAT, [f"{key}: must be a string"])
        reason = doc.get("reason", "")
        if "reason" in doc and (not isinstance(reason, str) or not reason):
            # An empty reason is spelled by leaving the field out: one spelling per statement.
            raise ValidationError(_WHAT, ["reason: must be a non-empty string (leave it out for no reason)"])
        return cls(
            request_id=doc["request_id"],
            action_digest=doc["action_digest"],
            verdict=cast(Verdict, doc["verdict"]),
            approver=doc["approver"],
            at=parse_time(doc["at"], "at"),
            reason=reason,
        )

    def canonical(self) -> bytes:
        """The exact bytes an approver signs: RFC 8785 canonical JSON."""
        return canonical_dumps(self.to_dict())


@dataclass(frozen=True)
class SignedStatement:
    """A statement plus the approver's signature over it.

    ``signature`` is the base64url Ed25519 signature over the canonical
    bytes, or the JSON form of a WebAuthn assertion
    (``{"type": "webauthn", ...}``, see :class:`~hitlgate.engine.approve._webauthn.Assertion`)
    made by a passkey over a challenge that is the SHA-256 of those bytes.
    """

    statement: Statement
    signature: str | Mapping[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.statement, Statement):
            raise ValidationError("signed approval", ["statement: must be a Statement"])
        _plain_str_field(self, "signature")
        if isinstance(self.signature, Mapping):
            from hitlgate.engine.approve._webauthn import Assertion

            # Parsed once here, so a malformed assertion is refused as bad input, and
            # stored in its one spelling.
            object.__setattr__(self, "signature", Assertion.from_dict(self.signature).to_dict())
            return
        try:
            raw = b64url_decode(self.signature)
        except ValueError as exc:
            raise ValidationError("signed approval", ["signature: must be unpadded base64url"]) from exc
        if len(raw) != 64:
            raise ValidationError("signed approval", ["signature: an Ed25519 signature is 64 bytes"])

    @property
    def is_passkey(self) -> bool:
        """Whether the signature is a WebAuthn assertion (a passkey), not an Ed25519 signature."""
        return not isinstance(self.signature, str)

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise :class:`ApprovalError` unless ``public_key`` signed this exact statement (Ed25519 only).

        A passkey-signed statement is verified with
        :func:`hitlgate.engine.approve.passkeys.verify_signature`, which finds the credential.
        """
        s = self.statement
        if not isinstance(self.signature, str):
            raise ApprovalError(
                f"{s.approver}'s {s.verdict} is signed with a passkey, not an Ed25519 key; "
                "it is verified against the approver's enrolled passkeys"
            )
        if not isinstance(public_key, Ed25519PublicKey):
            raise ApprovalError(
                f"signature of {s.approver}'s {s.verdict} does not verify: the registered key is not Ed25519"
            )
        try:
            public_key.verify(b64url_decode(self.signature), s.canonical())
        except (InvalidSignature, ValueError) as exc:
            raise ApprovalError(
                f"signature of {s.approver}'s {s.verdict} does not verify against {s.approver}'s "
                f"registered key (signed by another key, or the statement was altered after signing)"
            ) from exc

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"statement": {...}, "signature": "..." or {"type": "webauthn", ...}}``."""
        sig = self.signature if isinstance(self.signature, str) else dict(self.signature)
        return {"statement": self.statement.to_dict(), "signature": sig}

    @classmethod
    def from_dict(cls, doc: Any) -> SignedStatement:
        """Parse the JSON form strictly (does not verify the signature)."""
        what = "signed approval"
        if not isinstance(doc, Mapping):
            raise ValidationError(what, ["(document): must be an object"])
        problems = [f"{k}: unknown field" for k in sorted(set(doc) - _SIGNED_FIELDS, key=str)]
        problems += [f"{k}: required field is missing" for k in sorted(_SIGNED_FIELDS - set(doc))]
        if problems:
            raise ValidationError(what, problems)
        if not isinstance(doc["signature"], (str, Mapping)):
            raise ValidationError(what, ["signature: must be a base64url string or a WebAuthn assertion object"])
        return cls(Statement.from_dict(doc["statement"]), doc["signature"])

    def to_json(self) -> str:
        """The file an approver hands to ``hitlgate approve --signed FILE``."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, limits: Limits = DEFAULT_LIMITS) -> SignedStatement:
        """Parse :meth:`to_json` output (does not verify the signature).

        Refused over ``limits.approval_bytes`` before parsing, and parsed
        like every document from outside (:mod:`hitlgate.engine._safeparse`).
        """
        size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
        if size > limits.approval_bytes:
            raise ValidationError(
                "signed approval",
                [f"(document): larger than the limit of {limits.approval_bytes} bytes ({size} bytes)"],
                code="input_too_large",
            )
        doc = parse_json(text, what="signed approval", label="(document)", max_depth=limits.max_depth)
        return cls.from_dict(doc)


def sign(statement: Statement, private_key: Ed25519PrivateKey) -> SignedStatement:
    """Sign ``statement`` with an approver's private key."""
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ApprovalError("approval statements are signed with Ed25519 keys only")
    return SignedStatement(statement, b64url_encode(private_key.sign(statement.canonical())))

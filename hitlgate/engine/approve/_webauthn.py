"""WebAuthn assertions as approval signatures: their stored form and their verification.

A passkey signs an approval statement by answering a WebAuthn ``get``
ceremony whose challenge is ``SHA-256(statement.canonical())``. The whole
assertion is kept as the approval's signature::

    {"type": "webauthn", "credential_id", "authenticator_data", "client_data_json", "signature"}

(all base64url), so anyone holding the credential's COSE public key can
verify it again later, offline, exactly like an Ed25519 signature.

:func:`verify_assertion` checks, in this order (through py_webauthn's
``verify_authentication_response``, then the counter):

1. the assertion names the credential it is checked against;
2. the client data is a ``webauthn.get`` for exactly the challenge
   ``SHA-256(canonical statement)``, made on the expected origin;
3. the authenticator data is for the expected RP ID (its SHA-256), with
   the user-present **and** user-verified flags set (a passkey touched
   without its PIN or biometric does not approve anything);
4. the signature over ``authenticator_data || SHA-256(client_data_json)``
   verifies against the credential's public key;
5. when a previous signature count is given (votes, logins) and either it
   or the new one is non-zero, the new count is greater: an equal or lower
   count means a cloned authenticator or a replayed assertion.

Every failure raises :class:`~hitlgate.errors.ApprovalError`; nothing here
returns a bool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hitlgate.engine.keys.keyring import b64url_decode, b64url_encode
from hitlgate.errors import ApprovalError, ValidationError

ASSERTION_TYPE = "webauthn"
_FIELDS = ("credential_id", "authenticator_data", "client_data_json", "signature")
#: Larger than any real assertion part; refusing more bounds what is stored and hashed.
_MAX_PART = 8192


def challenge_for(canonical: bytes) -> bytes:
    """The WebAuthn challenge that signs ``canonical``: its SHA-256."""
    return hashlib.sha256(canonical).digest()


@dataclass(frozen=True)
class Assertion:
    """A WebAuthn assertion in its stored form (base64url parts)."""

    credential_id: str
    authenticator_data: str
    client_data_json: str
    signature: str

    @classmethod
    def from_dict(cls, doc: Any) -> Assertion:
        """Parse the stored form strictly; :class:`ValidationError` names the bad field."""
        what = "passkey assertion"
        if not isinstance(doc, Mapping):
            raise ValidationError(what, ["signature: must be an object"])
        allowed = {"type", *_FIELDS}
        problems = [f"signature.{k}: unknown field" for k in sorted(set(doc) - allowed, key=str)]
        problems += [f"signature.{k}: required field is missing" for k in sorted(allowed - set(doc))]
        if problems:
            raise ValidationError(what, problems)
        if doc["type"] != ASSERTION_TYPE:
            raise ValidationError(what, [f"signature.type: must be {ASSERTION_TYPE!r}"])
        for key in _FIELDS:
            value = doc[key]
            try:
                if not isinstance(value, str) or not value or len(value) > _MAX_PART:
                    raise ValueError("length")
                b64url_decode(value)
            except ValueError:
                raise ValidationError(
                    what, [f"signature.{key}: must be unpadded base64url of at most {_MAX_PART} characters"]
                ) from None
        return cls(doc["credential_id"], doc["authenticator_data"], doc["client_data_json"], doc["signature"])

    @classmethod
    def from_browser(cls, credential: Any) -> Assertion:
        """The stored form of a browser's ``PublicKeyCredential.toJSON()`` of a ``get`` ceremony."""
        what = "passkey assertion"
        if not isinstance(credential, Mapping) or not isinstance(credential.get("response"), Mapping):
            raise ValidationError(what, ["credential: must be the JSON of a PublicKeyCredential (with response)"])
        if credential.get("type") != "public-key":
            raise ValidationError(what, ["credential.type: must be 'public-key'"])
        response = credential["response"]
        cred_id = credential.get("rawId", credential.get("id"))
        if credential.get("id") != cred_id:
            raise ValidationError(what, ["credential.id: must equal rawId"])
        return cls.from_dict({
            "type": ASSERTION_TYPE,
            "credential_id": cred_id,
            "authenticator_data": response.get("authenticatorData"),
            "client_data_json": response.get("clientDataJSON"),
            "signature": response.get("signature"),
        })

    def to_dict(self) -> dict[str, str]:
        """The stored form."""
        return {"type": ASSERTION_TYPE, "credential_id": self.credential_id,
                "authenticator_data": self.authenticator_data, "client_data_json": self.client_data_json,
                "signature": self.signature}

    def to_credential_json(self) -> dict[str, Any]:
        """The ``PublicKeyCredential`` JSON py_webauthn verifies."""
        return {
            "id": self.credential_id,
            "rawId": self.credential_id,
            "type": "public-key",
            "response": {
                "authenticatorData": self.authenticator_data,
                "clientDataJSON": self.client_data_json,
                "signature": self.signature,
            },
        }

    def sign_count(self) -> int:
        """The signature counter in the authenticator data (bytes 33-36, big-endian)."""
        data = b64url_decode(self.authenticator_data)
        if len(data) < 37:
            raise ApprovalError("the passkey assertion's authenticator data is too short", code="passkey_invalid")
        return int.from_bytes(data[33:37], "big")


@dataclass(frozen=True)
class PasskeyKey:
    """An enrolled passkey's public key and where it was enrolled (what verifying needs)."""

    credential_id: str
    approver: str
    #: The credential's COSE public key, base64url.
    public_key: str
    rp_id: str
    origin: str

    def to_dict(self) -> dict[str, str]:
        """JSON form (``hitlgate approvers keys``, offline verification)."""
        return {"credential_id": self.credential_id, "approver": self.approver, "public_key": self.public_key,
                "rp_id": self.rp_id, "origin": self.origin}

    @classmethod
    def from_dict(cls, doc: Any) -> PasskeyKey:
        """Parse :meth:`to_dict` output strictly."""
        fields = ("credential_id", "approver", "public_key", "rp_id", "origin")
        if not isinstance(doc, Mapping) or set(doc) != set(fields) or not all(
            isinstance(doc[f], str) and doc[f] for f in fields
        ):
            raise ValidationError("passkey public key", [f"(document): must be an object with exactly {list(fields)}"])
        return cls(*(doc[f] for f in fields))


def verify_assertion(
    challenge: bytes,
    assertion: Assertion,
    key: PasskeyKey,
    *,
    origin: str | None = None,
    rp_id: str | None = None,
    previous_count: int | None = None,
    who: str = "",
) -> int:
    """Verify that ``key``'s passkey answered ``challenge`` (see the module docstring); return the new count.

    For an approval, ``challenge`` is :func:`challenge_for` of the statement's canonical bytes.

    ``origin`` and ``rp_id`` default to the ones the credential was enrolled
    on. ``previous_count`` (None: not checked, as when re-verifying a stored
    approval, since the counter has moved on since) is the last count seen.
    """
    from webauthn import verify_authentication_response
    from webauthn.helpers.exceptions import WebAuthnException

    label = who or f"{key.approver}'s"
    if assertion.credential_id != key.credential_id:
        raise ApprovalError(f"{label} passkey assertion is by credential {assertion.credential_id[:24]}, "
                            f"not {key.credential_id[:24]}", code="passkey_invalid")
    try:
        public_key = b64url_decode(key.public_key)
        verify_authentication_response(
            credential=assertion.to_credential_json(),
            expected_challenge=challenge,
            expected_rp_id=rp_id or key.rp_id,
            expected_origin=origin or key.origin,
            credential_public_key=public_key,
            # The counter is compared below, after the signature is known to be good.
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError) as exc:
        raise ApprovalError(f"{label} passkey assertion does not verify: {_reason(exc)}",
                            code="passkey_invalid") from exc
    count = assertion.sign_count()
    if previous_count is not None and (count > 0 or previous_count > 0) and count <= previous_count:
        raise ApprovalError(
            f"{label} passkey's signature counter went from {previous_count} to {count}: the authenticator "
            "was cloned or the assertion replayed; the passkey is refused (revoke it and enrol a new one)",
            code="passkey_counter",
        )
    return count


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    # py_webauthn's wording, made to say what it means for an approval.
    if "challenge" in text.lower():
        return "it signs a different statement (another request, action, verdict or time)"
    if "origin" in text.lower():
        return f"made on another origin ({text})"
    if "RP ID" in text:
        return "made for another RP ID (the authenticator data names another site)"
    if "verification is required" in text:
        return "user verification was not performed (the passkey's PIN or biometric is required)"
    return text


def public_key_b64(raw: bytes) -> str:
    """A COSE public key as base64url (its stored form)."""
    return b64url_encode(raw)

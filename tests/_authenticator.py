"""A software WebAuthn authenticator for tests: real EC2/P-256 and Ed25519 keys, real CBOR, real signatures.

It is an authenticator implementation (what a security key or a platform
passkey does), not a stand-in for hitlgate code: the server verifies what it
makes with py_webauthn exactly as it verifies a browser's. Attestation is
``none``. Knobs make the faults the attack tests need: user verification
not performed, another origin or RP ID, a counter that goes back (a clone).
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.keys.keyring import b64url_decode, b64url_encode

_UP, _UV, _AT = 0x01, 0x04, 0x40


@dataclass
class SoftAuthenticator:
    """One passkey: a key pair, a credential id, a signature counter."""

    origin: str
    rp_id: str
    alg: str = "es256"
    counter_step: int = 1
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    sign_count: int = 0
    key: Any = None

    def __post_init__(self) -> None:
        if self.key is None:
            self.key = ec.generate_private_key(ec.SECP256R1()) if self.alg == "es256" else Ed25519PrivateKey.generate()

    @property
    def id(self) -> str:
        """The credential id, base64url."""
        return b64url_encode(self.credential_id)

    def clone(self) -> SoftAuthenticator:
        """A copy with the same key and counter: what an attacker who extracted the key holds."""
        return copy.copy(self)

    def _cose(self) -> bytes:
        pub = self.key.public_key()
        if self.alg == "es256":
            nums = pub.public_numbers()
            return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: nums.x.to_bytes(32, "big"), -3: nums.y.to_bytes(32, "big")})
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return cbor2.dumps({1: 1, 3: -8, -1: 6, -2: pub.public_bytes(Encoding.Raw, PublicFormat.Raw)})

    def _sign(self, data: bytes) -> bytes:
        if self.alg == "es256":
            return bytes(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return bytes(self.key.sign(data))

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any], *, uv: bool = True, origin: str | None = None) -> dict[str, Any]:
        """Answer ``navigator.credentials.create`` with these creation options (JSON form); the credential JSON."""
        rp_id = options.get("rp", {}).get("id", self.rp_id)
        client = self._client_data("webauthn.create", options["challenge"], origin)
        flags = _UP | _AT | (_UV if uv else 0)
        attested = (bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self._cose())
        auth_data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + self.sign_count.to_bytes(4, "big")
        auth_data += attested
        att = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "response": {"clientDataJSON": b64url_encode(client), "attestationObject": b64url_encode(att),
                             "transports": ["internal"]},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}

    def get(self, options: dict[str, Any] | str, *, uv: bool = True, origin: str | None = None,
            rp_id: str | None = None) -> dict[str, Any]:
        """Answer ``navigator.credentials.get`` (request options JSON, or just the challenge); the assertion JSON."""
        challenge = options if isinstance(options, str) else options["challenge"]
        self.sign_count += self.counter_step
        client = self._client_data("webauthn.get", challenge, origin)
        flags = _UP | (_UV if uv else 0)
        auth_data = (hashlib.sha256((rp_id or self.rp_id).encode()).digest() + bytes([flags])
                     + self.sign_count.to_bytes(4, "big"))
        signature = self._sign(auth_data + hashlib.sha256(client).digest())
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "response": {"clientDataJSON": b64url_encode(client), "authenticatorData": b64url_encode(auth_data),
                             "signature": b64url_encode(signature), "userHandle": None},
                "clientExtensionResults": {}, "authenticatorAttachment": "platform"}


def challenge_of(canonical: str) -> str:
    """The base64url challenge that signs the canonical statement text."""
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())


def decode(text: str) -> bytes:
    """base64url to bytes."""
    return b64url_decode(text)

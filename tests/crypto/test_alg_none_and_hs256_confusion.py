"""Algorithm confusion: a warrant must be EdDSA, signed by a trusted key, with no key in its header."""

from __future__ import annotations

import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.engine.keys.keyring import (
    EngineKeyring,
    b64url_decode,
    b64url_encode,
    jwk_thumbprint,
    public_jwk,
    public_raw,
)
from hitlgate.engine.keys.warrants import MAX_TOKEN_LENGTH, WARRANT_TYP, IssuedWarrant, WarrantVerifier
from hitlgate.errors import InvalidWarrant

from .conftest import AUDIENCE, DIGEST, ISSUER, NOW, b64json, genuine_claims, sign_token


def test_genuine_warrant_verifies_and_is_standard_jws(
    keyring: EngineKeyring, verifier: WarrantVerifier, warrant: IssuedWarrant
) -> None:
    # Positive control: without it, every refusal below could be vacuous.
    claims = verifier.verify(warrant.token, action_digest=DIGEST, now=NOW)
    assert claims.jti == warrant.jti and claims.kid == keyring.current_kid
    assert jwt.get_unverified_header(warrant.token) == {"alg": "EdDSA", "kid": warrant.kid, "typ": WARRANT_TYP}
    # Interop: PyJWT's own strict decode accepts what we issue.
    decoded = jwt.decode(
        warrant.token,
        keyring.public_keys(NOW)[warrant.kid],
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    assert decoded["jti"] == warrant.jti


def _hs256(header: dict[str, str], claims: dict[str, object], secret: bytes) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


def test_alg_none_is_refused(keyring: EngineKeyring, verifier: WarrantVerifier) -> None:
    header = {"alg": "none", "typ": WARRANT_TYP, "kid": keyring.current_kid}
    unsigned = f"{b64json(header)}.{b64json(genuine_claims())}."
    with pytest.raises(InvalidWarrant, match="algorithm 'none' is not allowed"):
        verifier.verify(unsigned, action_digest=DIGEST, now=NOW)
    # The same via PyJWT's own "none" support, so nothing depends on our spelling.
    pyjwt_none = jwt.encode(
        genuine_claims(),
        None,  # type: ignore[arg-type]
        algorithm="none",
        headers={"kid": keyring.current_kid},
    )
    with pytest.raises(InvalidWarrant, match="algorithm 'none'"):
        verifier.verify(pyjwt_none, action_digest=DIGEST, now=NOW)


@pytest.mark.parametrize("alg", ["None", "NONE", "eddsa", "Ed25519", "EdDSA ", "ES256", "RS256", None, ["EdDSA"]])
def test_other_algorithms_are_refused(keyring: EngineKeyring, verifier: WarrantVerifier, alg: object) -> None:
    key = Ed25519PrivateKey.generate()
    header = {"alg": alg, "typ": WARRANT_TYP, "kid": keyring.current_kid}
    signing_input = f"{b64json(header)}.{b64json(genuine_claims())}"
    token = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"
    with pytest.raises(InvalidWarrant, match="is not allowed"):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


def test_hs256_keyed_with_the_public_key_is_refused(keyring: EngineKeyring, verifier: WarrantVerifier) -> None:
    # The classic confusion: an attacker who knows the public key uses it as
    # an HMAC secret, hoping the verifier feeds "the key" to HS256.
    public = keyring.public_keys(NOW)[keyring.current_kid]
    secrets_to_try = [
        public_raw(public),
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(public_jwk(public)).encode(),
        public_jwk(public)["x"].encode(),
    ]
    for secret in secrets_to_try:
        token = _hs256({"alg": "HS256", "typ": WARRANT_TYP, "kid": keyring.current_kid}, genuine_claims(), secret)
        with pytest.raises(InvalidWarrant, match="algorithm 'HS256' is not allowed"):
            verifier.verify(token, action_digest=DIGEST, now=NOW)


def test_eddsa_signed_by_another_key_under_the_trusted_kid_is_refused(
    keyring: EngineKeyring, verifier: WarrantVerifier
) -> None:
    attacker = Ed25519PrivateKey.generate()
    token = sign_token(attacker, genuine_claims(), kid=keyring.current_kid)
    with pytest.raises(InvalidWarrant, match="signature does not verify"):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


@pytest.mark.parametrize("param", ["jwk", "jku", "x5u", "x5c", "x5t", "crit"])
def test_key_material_in_the_header_is_refused(keyring: EngineKeyring, verifier: WarrantVerifier, param: str) -> None:
    # The attacker signs with their own key and names it in the header,
    # hoping the verifier takes the key from the token.
    attacker = Ed25519PrivateKey.generate()
    attacker_jwk = public_jwk(attacker.public_key())
    values = {
        "jwk": attacker_jwk,
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": ["MIIB..."],
        "x5t": "abc",
        "crit": ["exp"],
    }
    for kid in (keyring.current_kid, jwk_thumbprint(attacker.public_key())):
        token = sign_token(attacker, genuine_claims(), kid=kid, extra_header={param: values[param]})
        with pytest.raises(InvalidWarrant, match=f"header parameter '{param}' is refused"):
            verifier.verify(token, action_digest=DIGEST, now=NOW)


def test_any_unexpected_header_parameter_is_refused(keyring: EngineKeyring, verifier: WarrantVerifier) -> None:
    _, key = keyring.signing_key()
    token = sign_token(key, genuine_claims(), kid=keyring.current_kid, extra_header={"b64": False})
    with pytest.raises(InvalidWarrant, match="unexpected header parameter 'b64'"):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


def test_duplicate_alg_in_header_is_refused(keyring: EngineKeyring, verifier: WarrantVerifier) -> None:
    # Parser differential: one parser reads the first "alg", another the last.
    _, key = keyring.signing_key()
    header = f'{{"alg":"none","alg":"EdDSA","typ":"{WARRANT_TYP}","kid":"{keyring.current_kid}"}}'
    signing_input = f"{b64url_encode(header.encode())}.{b64json(genuine_claims())}"
    token = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"
    with pytest.raises(InvalidWarrant, match="duplicate JSON member 'alg'"):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


def test_wrong_typ_is_refused(keyring: EngineKeyring, verifier: WarrantVerifier) -> None:
    # A validly signed engine token of another type (e.g. an audit
    # checkpoint, or a generic JWT) is not a warrant.
    _, key = keyring.signing_key()
    for typ in ("JWT", "hitlgate-audit-checkpoint+jwt", "HITLGATE-WARRANT+JWT"):
        token = sign_token(key, genuine_claims(), kid=keyring.current_kid, typ=typ)
        with pytest.raises(InvalidWarrant, match="token type .* is not 'hitlgate-warrant\\+jwt'"):
            verifier.verify(token, action_digest=DIGEST, now=NOW)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: t + "=", "not strict base64url"),
        (lambda t: t.replace(".", ".=", 1), "not strict base64url"),
        (lambda t: t.replace(".", ". ", 1), "not strict base64url"),
        (lambda t: t + ".", "^invalid warrant: token has 4 segments, a compact JWS has 3$"),
        (lambda t: t.rsplit(".", 1)[0], "^invalid warrant: token has 2 segments, a compact JWS has 3$"),
        (lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BA"),
         r"^invalid warrant: signature does not verify with key \S+$"),
        (lambda t: t.rsplit(".", 1)[0] + "." + b64url_encode(b64url_decode(t.rsplit(".", 1)[1])[:63]),
         "^invalid warrant: signature is not 64 bytes$"),
        (lambda t: t[:-1] + ("B" if t[-1] == "A" else "A"), "trailing bits|does not verify"),
        (lambda t: t + "é", "^invalid warrant: token contains non-ASCII characters$"),
        (lambda t: "x" * (MAX_TOKEN_LENGTH + 1),
         f"^invalid warrant: token is longer than {MAX_TOKEN_LENGTH} characters$"),
    ],
)
def test_malformed_encodings_are_refused(
    verifier: WarrantVerifier, warrant: IssuedWarrant, mangle: object, reason: str
) -> None:
    token = mangle(warrant.token)  # type: ignore[operator]
    with pytest.raises(InvalidWarrant, match=reason):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


def test_non_string_token_is_refused(verifier: WarrantVerifier, warrant: IssuedWarrant) -> None:
    with pytest.raises(InvalidWarrant, match="^invalid warrant: token is not a string$"):
        verifier.verify(warrant.token.encode(), action_digest=DIGEST, now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"not json", "header is not valid JSON"),
        (b'["EdDSA"]', "header is not a JSON object"),
        (b'{"alg":"EdDSA","alg":"EdDSA"}', "duplicate JSON member 'alg'"),
        # The refusal names the member that came twice, not the first one read.
        (b'{"typ":"x","alg":"EdDSA","kid":"k","kid":"k"}', "^invalid warrant: duplicate JSON member 'kid'$"),
        (b'{"alg":"EdDSA","kid":"' + b"A" * 43 + b'"}', "^invalid warrant: header typ is missing$"),
        (b'{"alg":"EdDSA","typ":"' + b"x" * 600 + b'"}', "^invalid warrant: header is too long$"),
        (b'{"alg":NaN}', "constant NaN is not allowed"),
        (b"\xff\xfe", "header is not valid JSON"),
    ],
)
def test_malformed_headers_are_refused(verifier: WarrantVerifier, header: bytes, reason: str) -> None:
    token = f"{b64url_encode(header)}.{b64json(genuine_claims())}.{b64url_encode(bytes(64))}"
    with pytest.raises(InvalidWarrant, match=reason):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


def _padded_header(keyring: EngineKeyring, length: int) -> str:
    """A genuine header segment, its JSON padded with spaces to ``length`` base64url characters."""
    compact = f'{{"alg":"EdDSA","typ":"{WARRANT_TYP}","kid":"{keyring.current_kid}"}}'
    raw_length = length * 3 // 4
    segment = b64url_encode((compact[:-1] + " " * (raw_length - len(compact)) + "}").encode())
    assert len(segment) == length
    return segment


@pytest.mark.parametrize(("length", "refused"), [(512, False), (515, True)])
def test_header_length_limit_is_512_characters(
    keyring: EngineKeyring, verifier: WarrantVerifier, length: int, refused: bool
) -> None:
    # The header is read before the signature is checked, so its length is capped; the cap is
    # MAX_HEADER_LENGTH characters of the segment, inclusive. Both tokens are genuinely signed.
    _, key = keyring.signing_key()
    signing_input = f"{_padded_header(keyring, length)}.{b64json(genuine_claims())}"
    token = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"
    if refused:
        with pytest.raises(InvalidWarrant, match="^invalid warrant: header is too long$"):
            verifier.verify(token, action_digest=DIGEST, now=NOW)
    else:
        assert verifier.verify(token, action_digest=DIGEST, now=NOW).jti == genuine_claims()["jti"]


@pytest.mark.parametrize(("payload", "reason"), [(b"[]", "claims is not a JSON object"), (b"{", "not valid JSON")])
def test_engine_signed_non_object_claims_are_refused(
    keyring: EngineKeyring, verifier: WarrantVerifier, payload: bytes, reason: str
) -> None:
    _, key = keyring.signing_key()
    header = {"alg": "EdDSA", "typ": WARRANT_TYP, "kid": keyring.current_kid}
    signing_input = f"{b64json(header)}.{b64url_encode(payload)}"
    token = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"
    with pytest.raises(InvalidWarrant, match=reason):
        verifier.verify(token, action_digest=DIGEST, now=NOW)


def test_forged_signature_is_refused_with_its_code(verifier: WarrantVerifier, warrant: IssuedWarrant) -> None:
    # A caller (the CLI's --json, the HTTP API) tells a bad signature from other refusals by its code.
    head, payload, _ = warrant.token.split(".")
    forged = f"{head}.{payload}.{b64url_encode(bytes(64))}"
    refused = rf"^invalid warrant: signature does not verify with key {warrant.kid}$"
    with pytest.raises(InvalidWarrant, match=refused) as err:
        verifier.verify(forged, action_digest=DIGEST, now=NOW)
    assert err.value.code == "bad_signature"


@pytest.mark.parametrize(("extra", "refused"), [(0, False), (1, True)])
def test_token_length_limit_is_inclusive(
    keyring: EngineKeyring, verifier: WarrantVerifier, extra: int, refused: bool
) -> None:
    # A token of exactly MAX_TOKEN_LENGTH characters is read (and refused for what it is); one more is too long.
    _, key = keyring.signing_key()
    head = b64json({"alg": "EdDSA", "typ": WARRANT_TYP, "kid": keyring.current_kid})
    signature = b64url_encode(bytes(64))
    filler = MAX_TOKEN_LENGTH + extra - len(head) - len(signature) - 2
    token = f"{head}.{'A' * filler}.{signature}"
    assert len(token) == MAX_TOKEN_LENGTH + extra
    too_long = f"^invalid warrant: token is longer than {MAX_TOKEN_LENGTH} characters$"
    reason = too_long if refused else "^invalid warrant: signature does not verify with key "
    with pytest.raises(InvalidWarrant, match=reason):
        verifier.verify(token, action_digest=DIGEST, now=NOW)

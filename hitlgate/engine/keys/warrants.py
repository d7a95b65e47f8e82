"""Warrants: signed, single-use, short-lived permission to run one action.

A warrant is a compact JWS signed by the engine's current key
(:class:`~hitlgate.engine.keys.keyring.EngineKeyring`)::

    header  {"alg": "EdDSA", "kid": <RFC 7638 thumbprint>, "typ": "hitlgate-warrant+jwt"}
    claims  {"iss", "aud", "sub": <request id>, "jti", "iat", "nbf", "exp",
             "ver": 1, "action_digest", "tier", "approvals", "policy_revision"}

Issuing uses PyJWT. Lifetimes are minutes, not hours (10 s to 1 h): a stolen
warrant is useless soon, and the key grace window (one hour by default) must
cover the longest lifetime.

Verification (:class:`WarrantVerifier`) raises :class:`~hitlgate.errors.InvalidWarrant`
for every failure, with the reason in the message and in the log; it never
returns a bool. In order, it checks:

1. the token is ASCII, at most :data:`MAX_TOKEN_LENGTH` characters, and
   exactly three strictly base64url segments (no padding, no foreign
   characters, canonical trailing bits);
2. the header is a JSON object with exactly ``alg``, ``typ`` and ``kid``:
   ``alg`` must be ``EdDSA`` (so ``none`` and ``HS256`` confusion cannot
   arise), ``typ`` must be the expected type (a warrant is not an audit
   checkpoint and vice versa), and any other parameter is refused, naming
   ``jku``, ``jwk``, ``x5u``, ``x5c`` and ``crit`` explicitly: keys come only
   from the verifier's own key set, never from the token;
3. ``kid`` names a key in the verifier's own key set (for a keyring: the
   current key or a retired key inside its grace window at ``now``);
4. the Ed25519 signature (64 bytes) verifies over ``header.payload``;
5. only then are the claims parsed (JSON object, no duplicate members, no
   NaN/Infinity) and checked: exactly the claims above, each of the right
   type (integers are not booleans), ``iss`` and ``aud`` equal to the
   configured strings, ``ver`` equal to :data:`WARRANT_VERSION`, a tier that
   permits action, distinct approvers at least as many as the tier needs,
   a lifetime of at most :data:`MAX_TTL_SECONDS`;
6. time, against the injectable ``now``: ``iat <= nbf < exp``,
   ``nbf - leeway <= now < exp + leeway`` (hence ``iat <= now + leeway``);
7. the ``action_digest`` claim equals the digest of the action about to run
   (``hmac.compare_digest``).

Consuming the ``jti`` exactly once is not done here: the store does it with
a unique constraint, in the same transaction that records the execution.

Why not ``jwt.decode``. PyJWT's decode checks time with the real clock, so a
verifier with an injectable clock must disable ``verify_exp``/``verify_nbf``/
``verify_iat`` and check times itself; once those are disabled PyJWT no
longer type-checks the time claims either, so a sound PyJWT-based verifier
still needs every check of step 5 and 6 done by hand, and PyJWT's base64url
decoder is lenient (it skips characters outside the alphabet). Measured on
one core (``bench/bench_warrants.py``; floor = a bare ``cryptography``
Ed25519 verify), ``jwt.decode`` with a cached ``PyJWT`` instance ran at
0.56-0.59x the floor's rate, missing the 0.7x target; the direct path here
(strict segment decoding, a cache of already-validated header segments, one
``cryptography`` verify over the signing input, then ``json.loads`` with
prebuilt decoders and explicit checks) runs at 0.83x and is stricter. Tests
cross-check that every warrant we issue also decodes with ``jwt.decode``, so
the tokens stay standard JWS.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hitlgate.engine._canonical import dumps as canonical_dumps
from hitlgate.engine.approve.approvals import DIGEST_RE, format_time
from hitlgate.engine.keys.keyring import EngineKeyring, b64url_decode
from hitlgate.errors import ApprovalError, ConfigError, InputError, InvalidWarrant

log = logging.getLogger(__name__)

WARRANT_TYP = "hitlgate-warrant+jwt"
WARRANT_VERSION = 1
ALGORITHM = "EdDSA"

#: Warrants live minutes, not hours. The lower bound keeps clock skew
#: between engine and executor from eating the whole lifetime.
MIN_TTL_SECONDS = 10
MAX_TTL_SECONDS = 3600

#: Tokens longer than this are refused before any parsing. A warrant carries each counted approval
#: whole (its signature or passkey assertion, and its reason of up to 1,000 characters), so a quorum of
#: several approvers with long reasons needs tens of kilobytes; the issuer refuses to sign a longer one.
MAX_TOKEN_LENGTH = 128 * 1024
MAX_HEADER_LENGTH = 512
MAX_ID_LENGTH = 256

#: Tiers a warrant may carry, with the least number of distinct approvers.
#: ``deny`` is absent: nothing ever authorises a denied action.
MIN_APPROVALS = {"auto_allow": 0, "single_approval": 1, "dual_approval": 2}

#: Header parameters that would let a token choose its own verification key.
DANGEROUS_HEADERS = ("jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "crit")
_HEADER_FIELDS = frozenset({"alg", "typ", "kid"})
_CLAIMS = frozenset(
    {"iss", "aud", "sub", "jti", "iat", "nbf", "exp", "ver", "action_digest", "tier", "approvals", "policy_revision"}
)
_KID_RE = re.compile(r"[A-Za-z0-9_-]{43}")

KeySource = Mapping[str, Ed25519PublicKey] | EngineKeyring


class JWSRefused(Exception):  # noqa: N818 - internal; callers wrap it in InvalidWarrant or AuditChainError.
    """Why a compact JWS was refused. Internal: never escapes this package.

    ``code`` becomes the stable code of the :class:`InvalidWarrant` a caller
    (or an agent reading ``--json``) can branch on.
    """

    def __init__(self, message: str, code: str = "invalid_warrant") -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------
# Strict compact JWS verification (shared with audit checkpoints)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise JWSRefused(f"duplicate JSON member {dup!r}")
    return out


def _no_constants(name: str) -> Any:
    raise JWSRefused(f"JSON constant {name} is not allowed")


def _json_object(raw: bytes, what: str, *, signed: bool) -> dict[str, Any]:
    """Parse a JSON object; refuse NaN/Infinity, and duplicate members unless ``signed``.

    Duplicate members are how parser differentials smuggle a second value
    past one parser. That matters for the header, read before the signature
    is checked. The claims are parsed only after the signature verified, so
    they were serialised by our own issuer from a dict, which cannot hold
    duplicates; skipping the (Python-level) hook there saves time on the
    hot path without accepting anything a forger controls.
    """
    # Equivalent mutants: the duplicate-refusing decoder for signed claims too only costs time (our issuer
    # cannot write a duplicate, and nobody else can sign), and "UTF-8" names the same codec as "utf-8".
    decoder = _SIGNED_DECODER if signed else _UNSIGNED_DECODER  # pragma: no mutate
    try:
        value = decoder.decode(raw.decode("utf-8"))  # pragma: no mutate - as above
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise JWSRefused(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise JWSRefused(f"{what} is not a JSON object")
    return value


# Decoders are built once: json.loads with hooks would build one per call.
_UNSIGNED_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
_SIGNED_DECODER = json.JSONDecoder(parse_constant=_no_constants)

#: Header segments already validated, mapped to (typ, kid). Validation is a
#: pure function of the segment's text, so a hit is exactly as strict as a
#: miss; the cache is small and only holds headers that passed, so garbage
#: tokens cannot grow it. Warrants signed by one key share one header.
_HEADER_CACHE: dict[str, tuple[str, str]] = {}
_HEADER_CACHE_SIZE = 64


def _parse_header(header_b64: str) -> tuple[str, str]:
    """Validate a header segment; return ``(typ, kid)``. Reads nothing but alg, typ, kid."""
    cached = _HEADER_CACHE.get(header_b64)
    if cached is not None:
        return cached
    if len(header_b64) > MAX_HEADER_LENGTH:
        raise JWSRefused("header is too long")
    try:
        header_raw = b64url_decode(header_b64)
    except ValueError as exc:
        raise JWSRefused(f"header is not strict base64url: {exc}") from exc
    header = _json_object(header_raw, "header", signed=False)
    extra = set(header) - _HEADER_FIELDS
    if extra:
        dangerous = sorted(extra.intersection(DANGEROUS_HEADERS))
        if dangerous:
            raise JWSRefused(f"header parameter {dangerous[0]!r} is refused: keys come only from the trusted key set")
        raise JWSRefused(f"unexpected header parameter {sorted(extra)[0]!r}")
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise JWSRefused(f"algorithm {alg!r} is not allowed (only {ALGORITHM})")
    typ = header.get("typ")
    if not isinstance(typ, str):
        raise JWSRefused("header typ is missing")
    kid = header.get("kid")
    if not isinstance(kid, str) or _KID_RE.fullmatch(kid) is None:
        raise JWSRefused("header kid is missing or malformed")
    # Equivalent mutant (> for >=): the cache then holds 65 headers before it is cleared, not 64; a hit is
    # as strict as a miss (see above), so its size changes only the memory it takes.
    if len(_HEADER_CACHE) >= _HEADER_CACHE_SIZE:  # pragma: no mutate
        _HEADER_CACHE.clear()
    _HEADER_CACHE[header_b64] = (typ, kid)
    return typ, kid


def verify_compact_jws(
    token: str,
    *,
    typ: str,
    key_for: Callable[[str], Ed25519PublicKey],
) -> tuple[str, dict[str, Any]]:
    """Verify a compact EdDSA JWS of type ``typ``; return ``(kid, claims)``.

    ``key_for(kid)`` returns the trusted key or raises :class:`JWSRefused`.
    Claims are parsed only after the signature verifies. This is the shared
    low-level step of warrants and audit checkpoints; callers check claims.
    """
    if not isinstance(token, str):
        raise JWSRefused("token is not a string")
    if len(token) > MAX_TOKEN_LENGTH:
        raise JWSRefused(f"token is longer than {MAX_TOKEN_LENGTH} characters")
    if not token.isascii():
        raise JWSRefused("token contains non-ASCII characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise JWSRefused(f"token has {len(parts)} segments, a compact JWS has 3")
    header_b64, payload_b64, signature_b64 = parts
    # The header is read before the signature is checked, so only alg, typ
    # and kid are looked at, and only to refuse or to pick a trusted key.
    header_typ, kid = _parse_header(header_b64)
    if header_typ != typ:
        raise JWSRefused(f"token type {header_typ!r} is not {typ!r}")
    try:
        payload_raw = b64url_decode(payload_b64)
        signature = b64url_decode(signature_b64)
    except ValueError as exc:
        raise JWSRefused(f"token is not strict base64url: {exc}") from exc
    public_key = key_for(kid)
    if len(signature) != 64:
        raise JWSRefused("signature is not 64 bytes")
    try:
        signing_input = token[: len(header_b64) + 1 + len(payload_b64)]
        # "ASCII" names the same codec (an equivalent mutant); the token was checked to be ASCII above.
        public_key.verify(signature, signing_input.encode("ascii"))  # pragma: no mutate
    except InvalidSignature as exc:
        raise JWSRefused(f"signature does not verify with key {kid}", "bad_signature") from exc
    return kid, _json_object(
        payload_raw, "claims",
        signed=True,  # pragma: no mutate - False only refuses duplicates our signer never writes (see _json_object)
    )


# --------------------------------------------------------------------------
# Value objects


@dataclass(frozen=True)
class IssuedWarrant:
    """A freshly issued warrant: the token plus what the store records."""

    token: str
    jti: str
    expires_at: datetime
    kid: str


@dataclass(frozen=True)
class WarrantClaims:
    """The verified claims of a warrant."""

    iss: str
    aud: str
    sub: str
    jti: str
    iat: int
    nbf: int
    exp: int
    ver: int
    action_digest: str
    tier: str
    approvals: tuple[Mapping[str, Any], ...]
    policy_revision: str
    kid: str

    @property
    def request_id(self) -> str:
        """The request the warrant was issued for (the ``sub`` claim)."""
        return self.sub

    @property
    def issued_at(self) -> datetime:
        """``iat`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.iat, UTC)

    @property
    def not_before(self) -> datetime:
        """``nbf`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.nbf, UTC)

    @property
    def expires_at(self) -> datetime:
        """``exp`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.exp, UTC)


def _aware_utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() != timedelta(0):
        raise InputError("now must be a timezone-aware UTC datetime")
    return now


def _jsonable(value: Any) -> Any:
    """Copy ``value`` into plain JSON types; datetimes become RFC 3339 strings."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InputError("approval times must be timezone-aware")
        return format_time(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _check_approvals(approvals: Any, tier: str) -> list[dict[str, Any]]:
    """Shape and count of the approvals claim; raises ``JWSRefused`` with the reason."""
    if not isinstance(approvals, list):
        raise JWSRefused("approvals must be a list")
    seen: set[str] = set()
    for i, a in enumerate(approvals):
        if not isinstance(a, dict) or not isinstance(a.get("approver"), str) or not a["approver"]:
            raise JWSRefused(f"approvals[{i}] must be an object naming its approver")
        if a["approver"] in seen:
            raise JWSRefused(f"approver {a['approver']!r} is counted twice")
        seen.add(a["approver"])
    needed = MIN_APPROVALS[tier]
    if len(seen) < needed:
        raise JWSRefused(f"tier {tier} needs {needed} distinct approvals, the warrant carries {len(seen)}")
    return approvals


# --------------------------------------------------------------------------
# Issuing


class WarrantIssuer:
    """Issues warrants signed with the keyring's current key."""

    def __init__(self, keyring: EngineKeyring, *, issuer: str, audience: str, ttl_seconds: int = 300) -> None:
        """Configure the issuer; ``ttl_seconds`` must be 10..3600 (:class:`ConfigError`)."""
        if (
            isinstance(ttl_seconds, bool)
            or not isinstance(ttl_seconds, int)
            or not (MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS)
        ):
            raise ConfigError(
                f"warrant ttl_seconds must be an integer from {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS} "
                f"(warrants live minutes, not hours), not {ttl_seconds!r}"
            )
        for name, value in (("issuer", issuer), ("audience", audience)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"warrant {name} must be a non-empty string")
        self.keyring = keyring
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(
        self,
        *,
        request_id: str,
        action_digest: str,
        tier: str,
        approvals: Sequence[Mapping[str, Any]],
        policy_revision: str,
        now: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> IssuedWarrant:
        """Sign a warrant for one request and one exact action.

        The warrant expires ``ttl_seconds`` after ``now``, or at
        ``expires_at`` when given (the workflow passes the grant time plus the
        decision's warrant lifetime, so the clock starts at the grant, not at
        the fetch). ``expires_at`` must be after ``now`` and at most
        ``MAX_TTL_SECONDS`` after it (:class:`ApprovalError`).

        ``approvals`` is passed through into the claim (datetimes become RFC
        3339 strings). Refuses (:class:`ApprovalError`) a ``deny`` tier or
        fewer distinct approvers than the tier needs, so a workflow bug cannot
        mint a warrant that verifiers would refuse anyway.
        """
        at = _aware_utc(now)
        if not isinstance(request_id, str) or not request_id or len(request_id) > MAX_ID_LENGTH:
            raise InputError(f"request_id must be a non-empty string of at most {MAX_ID_LENGTH} characters")
        if not isinstance(action_digest, str) or DIGEST_RE.fullmatch(action_digest) is None:
            raise InputError("action_digest must be sha256: followed by 64 lowercase hex digits")
        if not isinstance(policy_revision, str) or not policy_revision:
            raise InputError("policy_revision must be a non-empty string")
        if tier not in MIN_APPROVALS:
            raise ApprovalError(f"refusing to issue a warrant for tier {tier!r}")
        given: object = approvals
        if isinstance(given, str | bytes) or not isinstance(given, Sequence):
            raise InputError("approvals must be a sequence of mappings")
        claim_approvals = _jsonable(list(approvals))
        try:
            _check_approvals(claim_approvals, tier)
            canonical_dumps(claim_approvals)
        except JWSRefused as exc:
            raise ApprovalError(f"refusing to issue a warrant: {exc}") from exc
        except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
            raise InputError(f"approvals are not JSON-serialisable: {exc}") from exc

        kid, key = self.keyring.signing_key()
        iat = int(at.timestamp())
        exp = iat + self.ttl_seconds
        if expires_at is not None:
            # Whole seconds, rounded down: a warrant never outlives what it was given.
            exp = int(_aware_utc(expires_at).timestamp())
            if not iat < exp <= iat + MAX_TTL_SECONDS:
                raise ApprovalError(
                    f"refusing to issue a warrant expiring at {expires_at.isoformat()}: it must expire after "
                    f"{at.isoformat()} and within {MAX_TTL_SECONDS} seconds of it"
                )
        # 18 random bytes (144 bits); equivalent mutants ask for more or for the default (32).
        jti = secrets.token_urlsafe(18)  # pragma: no mutate
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": request_id,
            "jti": jti,
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "ver": WARRANT_VERSION,
            "action_digest": action_digest,
            "tier": tier,
            "approvals": claim_approvals,
            "policy_revision": policy_revision,
        }
        token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": WARRANT_TYP},
                           json_encoder=_Utf8Encoder)
        if len(token) > MAX_TOKEN_LENGTH:
            # Never sign what every verifier refuses: the request would hold a warrant nobody can use.
            raise ApprovalError(
                f"refusing to issue a warrant of {len(token)} characters for request {request_id}: verifiers "
                f"refuse tokens longer than {MAX_TOKEN_LENGTH}; its {len(claim_approvals)} approvals (their "
                "reasons and signatures) are too long to carry"
            )
        return IssuedWarrant(token=token, jti=jti, expires_at=datetime.fromtimestamp(exp, UTC), kid=kid)


class _Utf8Encoder(json.JSONEncoder):
    """The claims as compact UTF-8 JSON: a reason in Cyrillic or with emoji costs its UTF-8 bytes, not ``\\uXXXX``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["ensure_ascii"] = False
        super().__init__(**kwargs)


# --------------------------------------------------------------------------
# Verifying


def _str_claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims[name]
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise JWSRefused(f"claim {name} must be a non-empty string")
    return value


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims[name]
    # bool is a subclass of int; a JSON true is not a timestamp.
    if type(value) is not int:
        raise JWSRefused(f"claim {name} must be an integer")
    return value


class WarrantVerifier:
    """Verifies warrants against trusted keys, the configured issuer and audience."""

    def __init__(self, public_keys: KeySource, *, issuer: str, audience: str, leeway_seconds: int = 0) -> None:
        """Trust ``public_keys`` (a ``{kid: key}`` mapping or a live keyring)."""
        if isinstance(leeway_seconds, bool) or not isinstance(leeway_seconds, int) or not 0 <= leeway_seconds <= 60:
            raise ConfigError("leeway_seconds must be an integer from 0 to 60")
        for name, value in (("issuer", issuer), ("audience", audience)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"warrant {name} must be a non-empty string")
        self._keyring: EngineKeyring | None = None
        self._keys: dict[str, Ed25519PublicKey] = {}
        if isinstance(public_keys, EngineKeyring):
            self._keyring = public_keys
        else:
            # A private copy: the caller mutating its mapping later must not
            # change what this verifier trusts.
            self._keys = dict(public_keys)
            for kid, key in self._keys.items():
                if not isinstance(key, Ed25519PublicKey):
                    raise ConfigError(f"trusted key {kid} is not an Ed25519 public key")
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds

    def _key_for(self, now: datetime) -> Callable[[str], Ed25519PublicKey]:
        def lookup(kid: str) -> Ed25519PublicKey:
            if self._keyring is None:
                key = self._keys.get(kid)
                if key is None:
                    raise JWSRefused(f"unknown kid {kid}: not in the trusted key set", "unknown_kid")
                return key
            key = self._keyring.public_key(kid, now)
            if key is None:
                if any(r.kid == kid for r in self._keyring.records()):
                    raise JWSRefused(f"kid {kid} was retired and has left the JWKS", "unknown_kid")
                raise JWSRefused(f"unknown kid {kid}: not in the trusted key set", "unknown_kid")
            return key

        return lookup

    def verify(self, token: str, *, action_digest: str, now: datetime | None = None) -> WarrantClaims:
        """Verify ``token`` for the action whose digest is ``action_digest``.

        Returns the claims, or raises :class:`InvalidWarrant` naming the
        reason. Does not consume the ``jti``; the store does.
        """
        at = _aware_utc(now)
        try:
            return self._verify(token, action_digest, at)
        except JWSRefused as exc:
            log.warning("warrant refused: %s", exc)
            raise InvalidWarrant(f"invalid warrant: {exc}", code=exc.code) from None

    def _verify(self, token: str, action_digest: str, now: datetime) -> WarrantClaims:
        kid, claims = verify_compact_jws(token, typ=WARRANT_TYP, key_for=self._key_for(now))
        if claims.keys() != _CLAIMS:
            missing = sorted(_CLAIMS - claims.keys())
            if missing:
                raise JWSRefused(f"missing claim {missing[0]!r}")
            raise JWSRefused(f"unexpected claim {sorted(claims.keys() - _CLAIMS)[0]!r}")
        ver = _int_claim(claims, "ver")
        if ver != WARRANT_VERSION:
            raise JWSRefused(f"warrant version {ver} is not supported (expected {WARRANT_VERSION})")
        if _str_claim(claims, "iss") != self.issuer:
            raise JWSRefused(f"issuer {claims['iss']!r} is not {self.issuer!r}")
        if _str_claim(claims, "aud") != self.audience:
            raise JWSRefused(f"audience {claims['aud']!r} is not {self.audience!r}")
        sub = _str_claim(claims, "sub")
        jti = _str_claim(claims, "jti")
        iat, nbf, exp = _int_claim(claims, "iat"), _int_claim(claims, "nbf"), _int_claim(claims, "exp")
        if not iat <= nbf < exp or exp - iat > MAX_TTL_SECONDS:
            raise JWSRefused(f"time claims are inconsistent or the lifetime exceeds {MAX_TTL_SECONDS} s")
        t = now.timestamp()
        if t < nbf - self.leeway:
            raise JWSRefused(f"warrant is not yet valid (nbf {nbf}, now {int(t)})", "not_yet_valid")
        if t >= exp + self.leeway:
            raise JWSRefused(f"warrant expired at {exp} (now {int(t)})", "expired")
        # "iat <= now + leeway" needs no check of its own: iat <= nbf was
        # checked above, and nbf <= now + leeway just now.
        tier = claims["tier"]
        if not isinstance(tier, str) or tier not in MIN_APPROVALS:
            raise JWSRefused(f"tier {tier!r} does not permit action")
        approvals = _check_approvals(claims["approvals"], tier)
        policy_revision = _str_claim(claims, "policy_revision")
        bound = claims["action_digest"]
        if not isinstance(bound, str) or DIGEST_RE.fullmatch(bound) is None:
            raise JWSRefused("claim action_digest is malformed")
        # Equivalent mutants on the codec names ("ASCII", "UTF-8"): Python's
        # codec lookup ignores case, so the same bytes are compared.
        if not isinstance(action_digest, str) or not hmac.compare_digest(
            bound.encode("ascii"), action_digest.encode("utf-8")  # pragma: no mutate
        ):
            raise JWSRefused("warrant is bound to a different action (action digest mismatch)", "digest_mismatch")
        return WarrantClaims(
            iss=claims["iss"],
            aud=claims["aud"],
            sub=sub,
            jti=jti,
            iat=iat,
            nbf=nbf,
            exp=exp,
            ver=ver,
            action_digest=bound,
            tier=tier,
            approvals=tuple(approvals),
            policy_revision=policy_revision,
            kid=kid,
        )

"""Passkeys (WebAuthn) of approvers: enrolment, the credential registry, and verifying passkey votes.

An approver named in the trusted inventory enrols a passkey once, through
a one-time link an admin creates (``hitlgate approvers enroll NAME``). The
link's token is 256 random bits; only its SHA-256 is stored, with an expiry,
and it is good for one passkey. Enrolment checks, in order:

1. the token's hash names an enrolment that is unused and not expired, for
   an approver still in the inventory;
2. the registration answers a challenge this server issued for this
   enrolment, not used before (the challenge row is deleted as it is used);
3. py_webauthn verifies the registration: client data type and challenge,
   the origin equal to ``server.public_url``, the authenticator data's RP
   ID hash equal to ``server.rp_id``, user presence **and** user
   verification, and a supported public key algorithm (attestation
   ``none``: the passkey is trusted because the one-time link reached the
   approver, not because of its maker);
4. the credential id is not enrolled already (for anyone).

The enrolment is then marked used and the credential stored bound to the
approver, with the audit events ``passkey_enrolment_used`` and
``passkey_enrolled`` (credential id, COSE public key, RP ID, origin) in
the same transaction. Creating a link is the event ``passkey_enrolment_created``.

A passkey vote is a :class:`~hitlgate.engine.approve.approvals.SignedStatement`
whose signature is the whole WebAuthn assertion over the challenge
``SHA-256(statement.canonical())``. :meth:`Passkeys.verify_vote` checks, in
order: the credential is enrolled and not revoked; it belongs to the
statement's approver (a passkey enrolled for someone else signs nothing for
them); the assertion verifies for the configured origin and RP ID with user
verification (:func:`~hitlgate.engine.approve._webauthn.verify_assertion`);
the signature counter increased when non-zero. The workflow then applies
every rule an Ed25519 vote meets (request, digest, window, not the
requester, one vote per person, eligibility) and stores the new counter in
the vote's transaction, only if no other use moved it meanwhile.

Stored approvals are re-verified (:func:`verify_signature`) wherever
Ed25519 ones are: when counted for a grant, when the warrant is signed, by
the executor guard, and offline from ``audit export`` plus the public keys
(:func:`verify_export_approvals`). A revoked passkey withdraws its
unused approvals, like a replaced Ed25519 key.

The registry lives in the database, which the engine does not trust for
keys (Ed25519 keys come from the inventory files). So every credential row
carries an HMAC-SHA256 under a secret beside the engine keys
(``passkeys.key``, 0600) over everything verifying trusts (credential id,
approver, public key, RP ID, origin), and every enrolment token carries an
HMAC over its approver and expiry. Someone who can write the database but
not the key directory can neither insert a passkey for an approver, nor
point one at another approver, nor make an enrolment link: such a row is
refused (``passkey_forged``, ``enrolment_invalid``) wherever it would count.

Every check raises (:class:`~hitlgate.errors.ApprovalError`, or
:class:`EnrolmentError` for links); none returns a bool.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hitlgate.engine._time import format_time
from hitlgate.engine.approve._webauthn import Assertion, PasskeyKey, challenge_for, verify_assertion
from hitlgate.engine.approve.approvals import SignedStatement
from hitlgate.engine.decide.inventory import Approver
from hitlgate.engine.keys.keyring import b64url_decode, b64url_encode
from hitlgate.errors import ApprovalError, AuditChainError, ConfigError, HitlgateError, InputError, NotFoundError

if TYPE_CHECKING:
    from hitlgate.engine.approve.workflow import Engine
    from hitlgate.engine.ledger.audit import AuditEvent
    from hitlgate.engine.ledger.store import Store, Transaction

log = logging.getLogger(__name__)

#: Default and longest lifetime of an enrolment link.
DEFAULT_ENROL_TTL = timedelta(minutes=60)
MAX_ENROL_TTL = timedelta(days=7)
#: How long a ceremony challenge (enrolment, login) may be answered.
CHALLENGE_TTL = timedelta(minutes=5)

__all__ = ["Assertion", "EnrolmentError", "Enrolment", "Passkeys", "PasskeyKey", "PasskeyRecord",
           "PasskeyUse", "RelyingParty", "verify_signature", "verify_export_approvals"]


class EnrolmentError(ApprovalError):
    """An enrolment link is unknown, expired or used (HTTP 403; ``enrolment_invalid``, ``_expired``, ``_used``)."""

    code = "enrolment_invalid"


def _token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


#: The secret that binds credential rows and enrolment tokens to this engine (beside the engine keys).
BINDING_KEY_FILE = "passkeys.key"


def binding_secret(key_dir: str | Path, *, create: bool) -> bytes:
    """The passkey binding secret ``<key_dir>/passkeys.key`` (32 bytes, 0600); made first when ``create``.

    Missing without ``create`` (nothing was ever enrolled by an engine
    with this key directory), or unsafe, raises :class:`ApprovalError`
    ``passkey_forged``: no passkey row can be trusted without it.
    """
    from hitlgate.engine._files import write_file

    path = Path(key_dir) / BINDING_KEY_FILE
    if create and not path.exists():
        try:
            write_file(path, secrets.token_bytes(32), secret=True, what="passkey binding key")
        except InputError as exc:
            if exc.code != "file_exists":  # Another replica created it first: use theirs.
                raise
    try:
        st = path.lstat()
        data = path.read_bytes() if os.path.isfile(path) and not path.is_symlink() else b""
    except OSError as exc:
        raise ApprovalError(f"the passkey binding key {path} cannot be read ({exc.strerror or exc}): no enrolled "
                            "passkey can be trusted without it (enrol passkeys again if it was lost)",
                            code="passkey_forged") from exc
    if st.st_mode & 0o077 or len(data) != 32:
        raise ApprovalError(f"the passkey binding key {path} must be a regular 32-byte file readable by its owner "
                            "only (chmod 600)", code="passkey_forged")
    return data


def _mac(secret: bytes, domain: str, fields: Iterable[str], size: int = 32) -> str:
    # Length-prefixed fields under a domain label, so no two field lists
    # (and no credential versus enrolment) share a MAC input.
    body = domain.encode() + b"".join(
        len(f.encode("utf-8", "surrogatepass")).to_bytes(4, "big") + f.encode("utf-8", "surrogatepass")
        for f in fields)
    return b64url_encode(hmac.new(secret, body, hashlib.sha256).digest()[:size])


def credential_binding(secret: bytes, key: PasskeyKey, revoked_at: datetime | None = None) -> str:
    """The HMAC a credential row carries: over credential id, approver, public key, RP ID, origin and revocation.

    Revoking recomputes it over the revocation time, so a row "un-revoked"
    in the database (``revoked_at`` set back to NULL) no longer verifies.
    """
    revoked = "" if revoked_at is None else format_time(revoked_at)
    return _mac(secret, "hitlgate passkey credential v1",
                (key.credential_id, key.approver, key.public_key, key.rp_id, key.origin, revoked))


def _enrolment_mac(secret: bytes, nonce: str, approver: str, expires_at: datetime) -> str:
    return _mac(secret, "hitlgate passkey enrolment v1", (nonce, approver, format_time(expires_at)), size=18)


@dataclass(frozen=True)
class RelyingParty:
    """Where passkeys are used: the console's origin and the WebAuthn RP ID (``server.public_url``, ``rp_id``)."""

    origin: str
    rp_id: str
    name: str = "hitlgate"

    @classmethod
    def from_settings(cls, public_url: str | None, rp_id: str | None) -> RelyingParty:
        """The relying party of the ``server:`` settings; :class:`ConfigError` when ``public_url`` is unset."""
        if not public_url:
            raise ConfigError(
                "server.public_url is not set: passkeys need the console's origin, the address approvers open, "
                "with a host name (browsers refuse an IP address as a passkey's site); add to hitlgate.yaml: "
                "server: {public_url: \"https://hitlgate.example.com\"} (or \"http://localhost:8080\" to try it)",
                code="public_url_missing",
            )
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"server.public_url: {public_url[:80]!r} is not an http(s) URL",
                              code="public_url_missing")
        origin = f"{parts.scheme}://{parts.netloc}"
        return cls(origin=origin, rp_id=rp_id or parts.hostname)


@dataclass(frozen=True)
class Enrolment:
    """A one-time enrolment link (never the token)."""

    token_hash: str
    approver: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True)
class PasskeyRecord:
    """An enrolled passkey as listed (``hitlgate approvers passkeys``)."""

    key: PasskeyKey
    sign_count: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**self.key.to_dict(), "sign_count": self.sign_count, "created_at": format_time(self.created_at),
                "last_used_at": None if self.last_used_at is None else format_time(self.last_used_at),
                "revoked_at": None if self.revoked_at is None else format_time(self.revoked_at)}


@dataclass(frozen=True)
class PasskeyUse:
    """A verified use of a passkey: the counter to store in the transaction that acts on it."""

    key: PasskeyKey
    previous_count: int
    new_count: int


def _key_from_row(row: Any) -> PasskeyKey:
    return PasskeyKey(credential_id=row["credential_id"], approver=row["approver"], public_key=row["public_key"],
                      rp_id=row["rp_id"], origin=row["origin"])


def passkey_lookup(store: Store, key_dir: str | Path) -> Callable[[str], PasskeyKey | None]:
    """A function finding an enrolled, unrevoked passkey by credential id in ``store`` (None: none).

    A row whose binding does not verify under ``key_dir``'s binding secret
    was not enrolled by this engine: the function raises
    :class:`ApprovalError` ``passkey_forged`` instead of returning it.
    """

    def lookup(credential_id: str) -> PasskeyKey | None:
        import sqlalchemy as sa

        from hitlgate.engine.ledger import _store_schema as t

        c = t.passkey_credentials.c
        with store.read() as tx:
            row = tx.conn.execute(
                sa.select(t.passkey_credentials).where(c.credential_id == credential_id, c.revoked_at.is_(None))
            ).mappings().first()
        if row is None:
            return None
        key = _key_from_row(row)
        expected = credential_binding(binding_secret(key_dir, create=False), key, row["revoked_at"])
        if not hmac.compare_digest(expected.encode(), str(row["binding"] or "").encode()):
            log.warning("passkey %s of %s has no valid binding: the row was written into the database",
                        key.credential_id[:24], key.approver[:60])
            raise ApprovalError(
                f"{key.approver[:60]}'s passkey {key.credential_id[:24]} was not enrolled by this engine (its row "
                "does not carry the engine's binding): it was written into the database, so it signs nothing",
                code="passkey_forged")
        return key

    return lookup


def verify_signature(
    signed: SignedStatement, approver: Approver, lookup: Callable[[str], PasskeyKey | None]
) -> None:
    """Raise :class:`ApprovalError` unless ``approver`` signed ``signed`` (Ed25519 key or one of their passkeys).

    For a passkey: the credential must be enrolled, unrevoked, bound to
    ``approver``, and the assertion must verify for the origin and RP ID it
    was enrolled on, with user verification. The counter is not compared:
    this re-verifies a stored approval, and the counter has moved on since.
    """
    if not signed.is_passkey:
        signed.verify(approver.public_key)
        return
    assertion = Assertion.from_dict(signed.signature)
    key = lookup(assertion.credential_id)
    _require_owner(key, assertion, approver.name)
    assert key is not None  # noqa: S101 - _require_owner raised otherwise.
    verify_assertion(challenge_for(signed.statement.canonical()), assertion, key)


def _require_owner(key: PasskeyKey | None, assertion: Assertion, approver: str) -> None:
    if key is None:
        raise ApprovalError(
            f"{approver}'s passkey {assertion.credential_id[:24]} is not enrolled or was revoked",
            code="passkey_unknown",
        )
    if key.approver != approver:
        raise ApprovalError(
            f"the passkey {assertion.credential_id[:24]} is enrolled for {key.approver}, not {approver}: "
            "a passkey signs only for the approver it was enrolled for",
            code="passkey_not_yours",
        )


class Passkeys:
    """Enrolment, the credential registry and passkey verification on an engine's store and audit chain."""

    def __init__(self, engine: Engine) -> None:
        """Passkeys in ``engine``'s store; the relying party comes from its ``server:`` settings."""
        self.engine = engine

    @property
    def relying_party(self) -> RelyingParty:
        """The origin and RP ID every ceremony is checked against."""
        server = self.engine.config.server
        return RelyingParty.from_settings(server.public_url, server.rp_id)

    # -- enrolment links ------------------------------------------------------

    def create_enrolment(self, approver: str, *, ttl: timedelta = DEFAULT_ENROL_TTL,
                         now: datetime | None = None) -> tuple[Enrolment, str]:
        """Create a one-time enrolment link for ``approver``; return it and the token (shown once, never stored)."""
        from hitlgate.engine.ledger import _store_schema as t

        self.engine.approvers.get(approver)  # Only approvers of the trusted inventory enrol.
        if not timedelta(minutes=1) <= ttl <= MAX_ENROL_TTL:
            raise InputError(f"--ttl: an enrolment link lives between 1 minute and {MAX_ENROL_TTL.days} days")
        at = self.engine.now(now)
        secret = binding_secret(self.engine.config.key_dir, create=True)
        expires = at + ttl
        # The token names its approver and expiry under the binding secret, so
        # a link row written into the database (or pointed at someone else) is refused.
        nonce = secrets.token_urlsafe(24)
        token = f"{nonce}.{_enrolment_mac(secret, nonce, approver, expires)}"
        enrolment = Enrolment(_token_hash(token), approver, at, expires)
        with self.engine.store.write() as tx:
            tx.conn.execute(t.passkey_enrolments.insert().values(
                token_hash=enrolment.token_hash, approver=approver, created_at=at, expires_at=enrolment.expires_at,
                used_at=None))
            self.engine.append(tx, "passkey_enrolment_created", {
                "approver": approver, "token_hash": enrolment.token_hash,
                "expires_at": format_time(enrolment.expires_at)}, at)
        return enrolment, token

    def enrolment(self, token: str, *, now: datetime | None = None) -> Enrolment:
        """The unused, unexpired enrolment of ``token``; :class:`EnrolmentError` otherwise."""
        with self.engine.store.read() as tx:
            return self._enrolment(tx, token, self.engine.now(now))

    def _enrolment(self, tx: Transaction, token: str, now: datetime) -> Enrolment:
        import sqlalchemy as sa

        from hitlgate.engine.ledger import _store_schema as t

        if not isinstance(token, str) or not 20 <= len(token) <= 100:
            raise EnrolmentError("this enrolment link is not valid (ask an admin for a new one)")
        row = tx.conn.execute(
            sa.select(t.passkey_enrolments).where(t.passkey_enrolments.c.token_hash == _token_hash(token))
        ).mappings().first()
        if row is None:
            raise EnrolmentError("this enrolment link is not valid (ask an admin for a new one)")
        enrolment = Enrolment(row["token_hash"], row["approver"], row["created_at"], row["expires_at"],
                              row["used_at"])
        nonce, _dot, mac = token.partition(".")
        expected = _enrolment_mac(binding_secret(self.engine.config.key_dir, create=False), nonce,
                                  enrolment.approver, enrolment.expires_at)
        if not hmac.compare_digest(expected.encode(), mac.encode("utf-8", "surrogatepass")):
            log.warning("enrolment link %s for %s does not carry the engine's binding: written into the database",
                        enrolment.token_hash[:24], enrolment.approver[:60])
            raise EnrolmentError("this enrolment link is not valid (ask an admin for a new one)")
        if enrolment.used_at is not None:
            raise EnrolmentError("this enrolment link was already used; each link enrols one passkey "
                                 "(ask an admin for a new one)", code="enrolment_used")
        if now >= enrolment.expires_at:
            raise EnrolmentError("this enrolment link expired (ask an admin for a new one)",
                                 code="enrolment_expired")
        return enrolment

    def registration_options(self, token: str, *, now: datetime | None = None) -> dict[str, Any]:
        """``PublicKeyCredentialCreationOptions`` JSON for the enrolment of ``token`` (stores its challenge)."""
        from webauthn import generate_registration_options, options_to_json
        from webauthn.helpers.structs import (
            AuthenticatorSelectionCriteria,
            PublicKeyCredentialDescriptor,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        at = self.engine.now(now)
        rp = self.relying_party
        enrolment = self.enrolment(token, now=at)
        existing = [r.key.credential_id for r in self.list(enrolment.approver) if r.revoked_at is None]
        options = generate_registration_options(
            rp_id=rp.rp_id,
            rp_name=rp.name,
            user_name=enrolment.approver,
            user_id=hashlib.sha256(f"hitlgate approver {enrolment.approver}".encode()).digest()[:16],
            user_display_name=enrolment.approver,
            # A discoverable credential lets the console's login ask "who are you" of the passkey itself.
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=b64url_decode(c)) for c in existing],
        )
        self._store_challenge(options.challenge, "enrol", enrolment.token_hash, at)
        return dict(json.loads(options_to_json(options)))

    def enrol(self, token: str, credential: Mapping[str, Any], *, now: datetime | None = None) -> PasskeyKey:
        """Verify the registration ``credential`` for the enrolment of ``token`` and store the passkey."""
        import sqlalchemy as sa
        from webauthn import verify_registration_response
        from webauthn.helpers.exceptions import WebAuthnException

        from hitlgate.engine.ledger import _store_schema as t

        at = self.engine.now(now)
        rp = self.relying_party
        challenge = _client_challenge(credential)
        with self.engine.store.write() as tx:
            enrolment = self._enrolment(tx, token, at)
            self.engine.approvers.get(enrolment.approver)  # Still in the inventory.
            self._take_challenge(tx, challenge, "enrol", enrolment.token_hash, at)
            try:
                verified = verify_registration_response(
                    credential=dict(credential), expected_challenge=challenge, expected_rp_id=rp.rp_id,
                    expected_origin=rp.origin, require_user_verification=True)
            except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
                raise ApprovalError(f"the passkey registration does not verify: {exc}",
                                    code="passkey_invalid") from exc
            key = PasskeyKey(credential_id=b64url_encode(verified.credential_id), approver=enrolment.approver,
                             public_key=b64url_encode(verified.credential_public_key), rp_id=rp.rp_id,
                             origin=rp.origin)
            c = t.passkey_credentials.c
            if tx.conn.execute(sa.select(c.approver).where(c.credential_id == key.credential_id)).first():
                raise ApprovalError("this passkey is enrolled already", code="passkey_exists")
            binding = credential_binding(binding_secret(self.engine.config.key_dir, create=True), key)
            tx.conn.execute(t.passkey_credentials.insert().values(
                credential_id=key.credential_id, approver=key.approver, public_key=key.public_key, rp_id=key.rp_id,
                origin=key.origin, sign_count=verified.sign_count, created_at=at, last_used_at=None,
                revoked_at=None, binding=binding))
            tx.conn.execute(t.passkey_enrolments.update()
                            .where(t.passkey_enrolments.c.token_hash == enrolment.token_hash).values(used_at=at))
            self.engine.append(tx, "passkey_enrolment_used",
                               {"approver": key.approver, "token_hash": enrolment.token_hash}, at)
            self.engine.append(tx, "passkey_enrolled", key.to_dict(), at)
        return key

    # -- the registry ---------------------------------------------------------

    def key(self, credential_id: str) -> PasskeyKey | None:
        """The enrolled, unrevoked passkey ``credential_id`` (None: none)."""
        return passkey_lookup(self.engine.store, self.engine.config.key_dir)(credential_id)

    def list(self, approver: str | None = None, *, verify: bool = False) -> builtins.list[PasskeyRecord]:
        """Every passkey (active and revoked), of ``approver`` or of everyone, oldest first.

        With ``verify``, a row whose binding does not verify raises
        :class:`ApprovalError` ``passkey_forged`` (what ``approvers keys`` exports is trusted offline).
        """
        import sqlalchemy as sa

        from hitlgate.engine.ledger import _store_schema as t

        c = t.passkey_credentials.c
        query = sa.select(t.passkey_credentials).order_by(c.created_at, c.credential_id)
        if approver is not None:
            query = query.where(c.approver == approver)
        with self.engine.store.read() as tx:
            rows = tx.conn.execute(query).mappings().all()
        if verify and rows:
            secret = binding_secret(self.engine.config.key_dir, create=False)
            for r in rows:
                key = _key_from_row(r)
                binding = credential_binding(secret, key, r["revoked_at"])
                if not hmac.compare_digest(binding.encode(), str(r["binding"] or "").encode()):
                    raise ApprovalError(f"{key.approver[:60]}'s passkey {key.credential_id[:24]} was not enrolled by "
                                        "this engine (its row does not carry the engine's binding): it was written "
                                        "into the database; revoke it", code="passkey_forged")
        return [PasskeyRecord(_key_from_row(r), int(r["sign_count"]), r["created_at"], r["last_used_at"],
                              r["revoked_at"]) for r in rows]

    def revoke(self, which: str, *, now: datetime | None = None) -> builtins.list[PasskeyKey]:
        """Revoke the passkey with credential id ``which``, else every passkey of approver ``which``."""
        import sqlalchemy as sa

        from hitlgate.engine.ledger import _store_schema as t

        at = self.engine.now(now)
        c = t.passkey_credentials.c
        with self.engine.store.write() as tx:
            rows = tx.conn.execute(sa.select(t.passkey_credentials).where(
                sa.or_(c.credential_id == which, c.approver == which), c.revoked_at.is_(None))).mappings().all()
            if not rows:
                raise NotFoundError(f"no active passkey with credential id or approver {which[:60]!r} "
                                    "(`hitlgate approvers passkeys`)")
            keys = [_key_from_row(r) for r in rows]
            secret = binding_secret(self.engine.config.key_dir, create=False)
            for key in keys:
                # The binding now covers the revocation: clearing revoked_at in the database voids the row.
                tx.conn.execute(t.passkey_credentials.update().where(c.credential_id == key.credential_id)
                                .values(revoked_at=at, binding=credential_binding(secret, key, at)))
                self.engine.append(tx, "passkey_revoked",
                                   {"approver": key.approver, "credential_id": key.credential_id}, at)
        return keys

    # -- login and votes ------------------------------------------------------

    def login_options(self, approver: str | None = None, *, now: datetime | None = None) -> dict[str, Any]:
        """``PublicKeyCredentialRequestOptions`` JSON for a console login (stores its challenge).

        With ``approver``, only their passkeys are allowed; without, the
        authenticator offers its discoverable credentials for this RP ID.
        """
        from webauthn import generate_authentication_options, options_to_json
        from webauthn.helpers.structs import PublicKeyCredentialDescriptor, UserVerificationRequirement

        at = self.engine.now(now)
        rp = self.relying_party
        allow = [] if approver is None else [
            PublicKeyCredentialDescriptor(id=b64url_decode(r.key.credential_id))
            for r in self.list(approver) if r.revoked_at is None]
        options = generate_authentication_options(rp_id=rp.rp_id, allow_credentials=allow,
                                                  user_verification=UserVerificationRequirement.REQUIRED)
        self._store_challenge(options.challenge, "login", "", at)
        return dict(json.loads(options_to_json(options)))

    def login(self, credential: Mapping[str, Any], *, now: datetime | None = None) -> str:
        """Verify a login assertion against a challenge this server issued; return the approver it names."""
        at = self.engine.now(now)
        rp = self.relying_party
        assertion = Assertion.from_browser(credential)
        challenge = _client_challenge(credential)
        key = self.key(assertion.credential_id)
        if key is None:
            raise ApprovalError("this passkey is not enrolled, or was revoked", code="passkey_unknown")
        approver = self.engine.approvers.get(key.approver)
        with self.engine.store.write() as tx:
            self._take_challenge(tx, challenge, "login", "", at)
            use = self._verify_use(tx, challenge, assertion, key, rp)
            self._advance(tx, use, at)
        return approver.name

    def verify_vote(self, signed: SignedStatement, approver: Approver) -> PasskeyUse:
        """Check a passkey vote's signature (see the module docstring); store the use with :meth:`advance`."""
        assertion = Assertion.from_dict(signed.signature)
        key = self.key(assertion.credential_id)
        _require_owner(key, assertion, approver.name)
        assert key is not None  # noqa: S101 - _require_owner raised otherwise.
        rp = self.relying_party
        with self.engine.store.read() as tx:
            return self._verify_use(tx, challenge_for(signed.statement.canonical()), assertion, key, rp)

    def _verify_use(self, tx: Transaction, challenge: bytes, assertion: Assertion, key: PasskeyKey,
                    rp: RelyingParty) -> PasskeyUse:
        import sqlalchemy as sa

        from hitlgate.engine.ledger import _store_schema as t

        c = t.passkey_credentials.c
        previous = tx.conn.execute(sa.select(c.sign_count).where(c.credential_id == key.credential_id)).scalar()
        count = verify_assertion(challenge, assertion, key, origin=rp.origin, rp_id=rp.rp_id,
                                 previous_count=int(previous or 0))
        return PasskeyUse(key, int(previous or 0), count)

    def advance(self, tx: Transaction, use: PasskeyUse, now: datetime) -> None:
        """Store the use's counter in ``tx``, refusing when another use moved it since it was verified."""
        self._advance(tx, use, now)

    @staticmethod
    def _advance(tx: Transaction, use: PasskeyUse, now: datetime) -> None:
        from hitlgate.engine.ledger import _store_schema as t

        c = t.passkey_credentials.c
        moved = tx.conn.execute(
            t.passkey_credentials.update()
            .where(c.credential_id == use.key.credential_id, c.sign_count == use.previous_count,
                   c.revoked_at.is_(None))
            .values(sign_count=use.new_count, last_used_at=now)
        ).rowcount
        if moved != 1:
            raise ApprovalError(
                f"{use.key.approver}'s passkey was used concurrently (its signature counter moved) or revoked; "
                "sign again", code="passkey_counter")

    # -- challenges -----------------------------------------------------------

    def _store_challenge(self, challenge: bytes, purpose: str, subject: str, now: datetime) -> None:
        import sqlalchemy as sa

        from hitlgate.engine.ledger import _store_schema as t

        w = t.webauthn_challenges
        with self.engine.store.write() as tx:
            # Challenges nobody answered are deleted as new ones are made, so the table stays small.
            tx.conn.execute(w.delete().where(w.c.expires_at < now))
            tx.conn.execute(sa.insert(w).values(challenge=b64url_encode(challenge), purpose=purpose,
                                                subject=subject, expires_at=now + CHALLENGE_TTL))

    @staticmethod
    def _take_challenge(tx: Transaction, challenge: bytes, purpose: str, subject: str, now: datetime) -> None:
        from hitlgate.engine.ledger import _store_schema as t

        w = t.webauthn_challenges
        taken = tx.conn.execute(w.delete().where(
            w.c.challenge == b64url_encode(challenge), w.c.purpose == purpose, w.c.subject == subject,
            w.c.expires_at > now)).rowcount
        if taken != 1:
            raise ApprovalError("the passkey answered a challenge this server did not issue, issued for something "
                                "else, already used or expired; start again", code="passkey_challenge")


#: Longer than any real clientDataJSON (base64url); the same bound the stored assertion form has.
_MAX_CLIENT_DATA = 8192


def _client_challenge(credential: Mapping[str, Any]) -> bytes:
    """The challenge inside a browser credential's client data (checked against the store by the caller)."""
    try:
        response = credential["response"]
        raw = response["clientDataJSON"]
        # Real client data is a few hundred bytes of flat JSON; a long or
        # deeply nested value would only cost time or raise RecursionError.
        if not isinstance(raw, str) or len(raw) > _MAX_CLIENT_DATA:
            raise ValueError("clientDataJSON too long")
        client_data = json.loads(b64url_decode(raw))
        return b64url_decode(client_data["challenge"])
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise InputError("credential: not a WebAuthn credential with client data (response.clientDataJSON)",
                         code="invalid_credential") from exc


# -- offline verification of an audit export ---------------------------------


@dataclass(frozen=True)
class ApproverKeys:
    """The public keys offline verification trusts: Ed25519 keys by approver and passkeys by credential id."""

    ed25519: Mapping[str, Any]
    passkeys: Mapping[str, PasskeyKey]

    @classmethod
    def from_dict(cls, doc: Any) -> ApproverKeys:
        """Parse ``hitlgate approvers keys`` output: ``{"approvers": {name: public_key}, "passkeys": [...]}``."""
        from hitlgate.engine.decide.inventory import decode_public_key
        from hitlgate.errors import ValidationError

        what = "approver keys"
        if not isinstance(doc, Mapping) or set(doc) - {"approvers", "passkeys"}:
            raise ValidationError(what, ["(document): must be an object with approvers and passkeys"])
        approvers = doc.get("approvers", {})
        if not isinstance(approvers, Mapping):
            raise ValidationError(what, ["approvers: must map approver names to Ed25519 public keys"])
        ed = {}
        for name, text in approvers.items():
            try:
                ed[name] = decode_public_key(text)
            except (ValueError, TypeError, HitlgateError) as exc:
                raise ValidationError(what, [f"approvers.{name}: not an Ed25519 public key ({exc})"]) from exc
        passkeys = doc.get("passkeys", [])
        if not isinstance(passkeys, list):
            raise ValidationError(what, ["passkeys: must be a list"])
        keys = [PasskeyKey.from_dict(p) for p in passkeys]
        return cls(ed, {k.credential_id: k for k in keys})


#: Audit events that carry a signed statement, and the verdict it must have.
_SIGNED_KINDS = {"approved": "approve", "rejected": "reject", "revoked": "reject"}


def verify_export_approvals(events: Iterable[AuditEvent], keys: ApproverKeys) -> int:
    """Verify every signed approval, rejection and revocation in ``events``; return how many.

    Offline, with only ``keys``: each ``approved``/``rejected``/``revoked``
    event's statement must be for that event's request, by the approver the
    event names, with the verdict the event means, and its signature (Ed25519
    or passkey assertion) must verify against that approver's key. The first
    failure raises :class:`~hitlgate.errors.AuditChainError` naming the event.
    Verify the chain itself first (:func:`~hitlgate.engine.ledger.audit.verify_chain`).
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    checked = 0
    for ev in events:
        verdict = _SIGNED_KINDS.get(ev.kind)
        if verdict is None:
            continue
        where = f"event seq {ev.seq} ({ev.kind})"
        try:
            signed = SignedStatement.from_dict(ev.payload.get("signed"))
            s = signed.statement
            named = ev.payload.get("by") if ev.kind == "revoked" else ev.payload.get("approver")
            if (s.request_id, s.verdict, s.approver) != (ev.request_id, verdict, named):
                raise ApprovalError(f"its statement is {s.verdict} of {s.request_id} by {s.approver}, "
                                    f"not {verdict} of {ev.request_id} by {named}")
            key = keys.ed25519.get(s.approver)
            if not signed.is_passkey and not isinstance(key, Ed25519PublicKey):
                raise ApprovalError(f"no Ed25519 public key for {s.approver} among the approver keys")
            approver = Approver(s.approver, frozenset(), frozenset(), key)  # type: ignore[arg-type]
            verify_signature(signed, approver, keys.passkeys.get)
        except HitlgateError as exc:
            raise AuditChainError(f"{where}: the signed statement does not verify: {exc}",
                                  code="approval_unverified") from exc
        checked += 1
    return checked

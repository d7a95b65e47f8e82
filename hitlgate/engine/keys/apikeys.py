"""API keys of the HTTP service: bearer tokens that name a principal and a role.

A token is ``hgk_<id>_<secret>``: ``id`` (16 hex digits) finds the row,
``secret`` (32 random bytes, base64url) proves possession. Only the SHA-256
of the secret is stored; a plain hash suffices because the secret has 256
bits of entropy, so no one recovers it by guessing (a password would need a
slow hash). :meth:`ApiKeys.authenticate` checks, in order:

1. the token has the shape above (anything else: ``unauthenticated``);
2. a key with that id exists; when it does not, the comparison below still
   runs against a fixed dummy hash, so the time taken does not tell a wrong
   id from a wrong secret;
3. the SHA-256 of the secret equals the stored hash, compared with
   :func:`hmac.compare_digest` (constant time);
4. the key is not revoked.

Every failure raises :class:`ApiKeyError` (HTTP 401, code
``unauthenticated``), whatever the reason; the reason is only logged.
Creating and revoking a key are audit events in the same transaction as
the row they write (``api_key_created``, ``api_key_revoked``). A failed
authentication writes nothing, so a flood of bad tokens never queues for
the store's write lock.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hitlgate.engine._time import format_time
from hitlgate.errors import HitlgateError, InputError, NotFoundError

if TYPE_CHECKING:
    from hitlgate.engine.approve.workflow import Engine

# SQLAlchemy and the tables are imported where they are used, so the CLI,
# which names ROLES in `hitlgate apikey create --help`, starts without them.

log = logging.getLogger(__name__)

#: The roles a key can hold. agent: decide, propose, read its own requests and
#: fetch their warrants; executor: verify and consume warrants, report
#: outcomes; viewer: read every request; admin: everything.
ROLES = ("agent", "executor", "viewer", "admin")

TOKEN_PREFIX = "hgk_"  # noqa: S105 - the public prefix of every token, not a secret.
_TOKEN = re.compile(r"hgk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,199}")
# Compared against when the id is unknown, so both failures cost one hash and one comparison.
_DUMMY_HASH = "sha256:" + hashlib.sha256(b"hitlgate no such api key").hexdigest()


class ApiKeyError(HitlgateError):
    """An API key was missing, malformed, unknown, wrong or revoked (one opaque error, like InvalidWarrant)."""

    exit_code = 3
    code = "unauthenticated"


def _hash(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A stored API key (never the secret)."""

    id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``apikey list``."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": format_time(self.created_at),
            "revoked_at": None if self.revoked_at is None else format_time(self.revoked_at),
        }


@dataclass(frozen=True)
class Principal:
    """Who is calling: the name and role of an authenticated API key."""

    name: str
    role: str
    key_id: str


def _from_row(row: Any) -> ApiKey:
    return ApiKey(id=row["id"], name=row["name"], role=row["role"], created_at=row["created_at"],
                  revoked_at=row["revoked_at"])


class ApiKeys:
    """API key management and authentication on an engine's store."""

    def __init__(self, engine: Engine) -> None:
        """Keys in ``engine``'s store; creation and revocation are audited in its chain."""
        self.engine = engine

    def create(self, name: str, role: str, *, now: datetime | None = None) -> tuple[ApiKey, str]:
        """Create a key for principal ``name`` with ``role``; return it and the token (shown once, never stored)."""
        if not _NAME.fullmatch(name):
            raise InputError(f"NAME: {name[:60]!r} is not a principal name (letters, digits, . _ @ -; 1-200)")
        if role not in ROLES:
            raise InputError(f"--role: {role!r} is not one of {', '.join(ROLES)}")

        from hitlgate.engine.ledger import _store_schema as t

        at = self.engine.now(now)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self.engine.store.write() as tx:
            tx.conn.execute(t.api_keys.insert().values(
                id=key_id, name=name, role=role, secret_hash=_hash(secret), created_at=at, revoked_at=None))
            self.engine.append(tx, "api_key_created", {"key_id": key_id, "name": name, "role": role}, at)
        return ApiKey(key_id, name, role, at), f"{TOKEN_PREFIX}{key_id}_{secret}"

    def list(self) -> list[ApiKey]:
        """Every key, active and revoked, oldest first."""
        import sqlalchemy as sa

        from hitlgate.engine.ledger import _store_schema as t

        with self.engine.store.read() as tx:
            rows = tx.conn.execute(sa.select(t.api_keys).order_by(t.api_keys.c.created_at, t.api_keys.c.id))
            return [_from_row(r) for r in rows.mappings()]

    def revoke(self, which: str, *, now: datetime | None = None) -> builtins.list[ApiKey]:
        """Revoke the key with id ``which``, else every active key of the principal ``which``; return them."""
        import sqlalchemy as sa

        from hitlgate.engine.ledger import _store_schema as t

        at = self.engine.now(now)
        k = t.api_keys.c
        with self.engine.store.write() as tx:
            rows = tx.conn.execute(
                sa.select(t.api_keys).where(sa.or_(k.id == which, k.name == which), k.revoked_at.is_(None))
            ).mappings().all()
            if not rows:
                raise NotFoundError(f"no active API key with id or name {which[:60]!r} (`hitlgate apikey list`)")
            revoked = []
            for row in rows:
                tx.conn.execute(t.api_keys.update().where(k.id == row["id"]).values(revoked_at=at))
                self.engine.append(tx, "api_key_revoked", {"key_id": row["id"], "name": row["name"]}, at)
                revoked.append(ApiKey(row["id"], row["name"], row["role"], row["created_at"], at))
        return revoked

    def authenticate(self, token: str) -> Principal:
        """The principal of a valid, unrevoked key; :class:`ApiKeyError` otherwise (see the module docstring)."""
        m = _TOKEN.fullmatch(token)
        if m is None:
            log.info("API key refused: not a hitlgate API key")
            raise ApiKeyError("the API key is malformed, unknown or revoked")
        import sqlalchemy as sa

        from hitlgate.engine.ledger import _store_schema as t

        key_id, secret = m.group(1), m.group(2)
        k = t.api_keys.c
        row = self.engine.store.read_first(sa.select(k.name, k.role, k.secret_hash, k.revoked_at).where(k.id == key_id))
        stored = row[2] if row is not None else _DUMMY_HASH
        matches = hmac.compare_digest(_hash(secret).encode(), str(stored).encode())
        if row is None or not matches or row[3] is not None:
            reason = "unknown id" if row is None else ("wrong secret" if not matches else "revoked")
            log.info("API key %s refused: %s", key_id, reason)
            raise ApiKeyError("the API key is malformed, unknown or revoked")
        return Principal(name=str(row[0]), role=str(row[1]), key_id=key_id)

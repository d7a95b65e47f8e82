"""The bundled example pack: when it is in use, and its demo approver keys.

The approvers of the bundled example inventory (alice, bob, ...) have keys
derived from a public seed, so ``hitlgate demo`` can sign approvals without
any set-up: ``sha256("hitlgate-demo-approver:" + name)`` is the Ed25519
private key. Anyone can compute them, so outside demo mode the engine
refuses every approval, rejection or revocation made with such a key
(:func:`require_not_demo_key`, error code ``demo_key``), also when a project
created by ``hitlgate init`` still carries them.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hitlgate.errors import ApprovalError

DEMO_SEED_PREFIX = "hitlgate-demo-approver:"

#: The approvers of the bundled example inventory. Their demo keys are
#: recognised under any name, so renaming an approver does not hide one.
EXAMPLE_APPROVERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace")


def demo_approver_key(name: str) -> Ed25519PrivateKey:
    """The demo private key of ``name`` (derived from a public seed: never use it for real)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"{DEMO_SEED_PREFIX}{name}".encode()).digest())


@functools.lru_cache(maxsize=1024)
def _demo_public_raw(name: str) -> bytes:
    return demo_approver_key(name).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def is_demo_key(public_key: Ed25519PublicKey, names: Iterable[str] = ()) -> bool:
    """Whether ``public_key`` is the demo key of one of ``names`` or of an example approver."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return any(_demo_public_raw(n) == raw for n in (*EXAMPLE_APPROVERS, *names))


def require_not_demo_key(name: str, public_key: Ed25519PublicKey, names: Iterable[str] = ()) -> None:
    """Raise :class:`ApprovalError` (code ``demo_key``) if ``name``'s registered key is a demo key."""
    if is_demo_key(public_key, (name, *names)):
        raise ApprovalError(
            f"{name}'s registered key is a demo key derived from a public seed; it counts only in "
            "`hitlgate demo`. Register a real key: hitlgate keys generate --out ~/.hitlgate/"
            f"{name}.pem, then put its public key under approvers.{name} in your project's inventory "
            "(`hitlgate init DIR` writes a project; the bundled example's inventory is not yours to edit)",
            code="demo_key",
        )


def uses_example_pack(policy_dir: Path, data_paths: Sequence[Path]) -> bool:
    """Whether the policy or the inventory is the bundled example (what runs with no or an empty config)."""
    from hitlgate.engine._resources import bundled_data_dir, bundled_policy_dir

    example = {bundled_policy_dir().resolve(), bundled_data_dir().resolve()}
    return Path(policy_dir).resolve() in example or any(Path(p).resolve() in example for p in data_paths)


def demo_key_approvers(approvers: Iterable[tuple[str, Ed25519PublicKey]]) -> list[str]:
    """The names among ``(name, public_key)`` whose registered key is a demo key."""
    return sorted(name for name, key in approvers if is_demo_key(key, (name,)))

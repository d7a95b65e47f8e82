"""Key rotation and key storage: grace windows, JWKS round trips, races and file modes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hitlgate.engine.keys.keyring import (
    STATE_FILE,
    EngineKeyring,
    b64url_decode,
    generate_approver_key,
    jwk_thumbprint,
    load_approver_key,
    public_jwk,
    public_raw,
)
from hitlgate.engine.keys.warrants import WarrantIssuer, WarrantVerifier
from hitlgate.errors import ConfigError, InputError, InvalidWarrant, StorageError

from .conftest import AUDIENCE, DIGEST, ISSUER, NOW, REVISION


def _issue(keyring: EngineKeyring, at: object = NOW) -> str:
    return (
        WarrantIssuer(keyring, issuer=ISSUER, audience=AUDIENCE)
        .issue(request_id="r", action_digest=DIGEST, tier="auto_allow", approvals=[], policy_revision=REVISION, now=at)  # type: ignore[arg-type]
        .token
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_old_kid_verifies_until_it_leaves_the_jwks(tmp_path: Path) -> None:
    ring = EngineKeyring.load_or_create(tmp_path / "k", retire_after_seconds=60)
    old_kid = ring.current_kid
    old_token = _issue(ring)
    verifier = WarrantVerifier(ring, issuer=ISSUER, audience=AUDIENCE)

    new_kid = ring.rotate(now=NOW + timedelta(seconds=10))
    assert new_kid != old_kid and ring.current_kid == new_kid
    assert ring.signing_key()[0] == new_kid
    assert {k["kid"] for k in ring.jwks(NOW + timedelta(seconds=69))["keys"]} == {old_kid, new_kid}

    # Inside the grace window the old warrant still opens its action.
    assert verifier.verify(old_token, action_digest=DIGEST, now=NOW + timedelta(seconds=69)).kid == old_kid
    # Once the retired key leaves the JWKS, its warrants are refused even
    # though the warrant itself has not expired yet.
    assert {k["kid"] for k in ring.jwks(NOW + timedelta(seconds=70))["keys"]} == {new_kid}
    with pytest.raises(InvalidWarrant, match=f"^invalid warrant: kid {old_kid} was retired and has left the JWKS$") \
            as retired:
        verifier.verify(old_token, action_digest=DIGEST, now=NOW + timedelta(seconds=70))
    assert retired.value.code == "unknown_kid"
    # The history still knows it, for old audit checkpoints.
    assert old_kid in ring.public_keys(NOW + timedelta(days=365), include_expired=True)
    # New warrants carry the new kid.
    assert verifier.verify(_issue(ring), action_digest=DIGEST, now=NOW).kid == new_kid


def test_rotation_destroys_the_retired_private_key(tmp_path: Path) -> None:
    ring = EngineKeyring.load_or_create(tmp_path / "k")
    old_kid = ring.current_kid
    ring.rotate(now=NOW)
    pems = sorted(p.name for p in (tmp_path / "k").glob("*.pem"))
    assert pems == [f"{ring.current_kid}.pem"] and f"{old_kid}.pem" not in pems


def test_rotation_by_another_process_is_seen(tmp_path: Path) -> None:
    executor_view = EngineKeyring.load_or_create(tmp_path / "k")
    verifier = WarrantVerifier(executor_view, issuer=ISSUER, audience=AUDIENCE)
    engine_view = EngineKeyring.load_or_create(tmp_path / "k")
    engine_view.rotate(now=NOW)
    # The executor has never heard of the new kid; an unknown kid makes it
    # re-check the disk instead of refusing on a stale view.
    assert verifier.verify(_issue(engine_view), action_digest=DIGEST, now=NOW).kid == engine_view.current_kid
    executor_view.refresh()
    assert executor_view.current_kid == engine_view.current_kid


def test_second_rotation_does_not_extend_the_grace_of_an_older_key(tmp_path: Path) -> None:
    # Each rotation retires only the key that was current. Re-stamping every
    # retired key with the new time would bring a key retired long ago (and
    # perhaps leaked) back into the JWKS for another grace period.
    ring = EngineKeyring.load_or_create(tmp_path / "k", retire_after_seconds=3600)
    first = ring.current_kid
    ring.rotate(now=NOW)
    second = ring.current_kid
    later = NOW + timedelta(hours=5)
    ring.rotate(now=later)
    retired = {r.kid: r.retired_at for r in ring.records()}
    assert retired[first] == NOW and retired[second] == later
    assert first not in ring.public_keys(later) and second in ring.public_keys(later)


def test_rotating_a_directory_without_a_keyring_is_refused(tmp_path: Path) -> None:
    ring = EngineKeyring(tmp_path / "empty")
    with pytest.raises(StorageError, match=f"^no keyring in {tmp_path / 'empty'} to rotate$"):
        ring.rotate(now=NOW)


def test_from_jwks_round_trip(keyring: EngineKeyring) -> None:
    keyring.rotate(now=NOW)
    jwks = json.loads(json.dumps(keyring.jwks(NOW)))
    parsed = EngineKeyring.from_jwks(jwks)
    assert parsed.keys() == keyring.public_keys(NOW).keys()
    for kid, key in parsed.items():
        assert isinstance(key, Ed25519PublicKey) and jwk_thumbprint(key) == kid
    for jwk in jwks["keys"]:
        assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    verifier = WarrantVerifier(parsed, issuer=ISSUER, audience=AUDIENCE)
    verifier.verify(_issue(keyring), action_digest=DIGEST, now=NOW)


def test_rfc8037_thumbprint_vector() -> None:
    # RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
    key = Ed25519PublicKey.from_public_bytes(b64url_decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"))
    assert jwk_thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_from_jwks_refuses_bad_sets(keyring: EngineKeyring) -> None:
    good = keyring.jwks(NOW)["keys"][0]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"keys": []}, "non-empty"),
        ({"keys": [{**good, "d": "secret"}]}, "contains a private key"),
        ({"keys": [{**good, "kid": "chosen-by-attacker"}]}, "not the RFC 7638 thumbprint"),
        ({"keys": [{**good, "crv": "X25519"}]}, "not an Ed25519 OKP key"),
        ({"keys": [{**good, "alg": "HS256"}]}, "not an EdDSA signature key"),
        ({"keys": [{**good, "alg": "none"}]}, "not an EdDSA signature key"),
        ({"keys": [{**good, "use": "enc"}]}, r"^JWKS keys\[0\] is not an EdDSA signature key$"),
        ({"keys": [{**good, "x": good["x"] + "="}]}, "malformed 'x'"),
        ({"keys": [{k: v for k, v in good.items() if k != "x"}]}, r"^JWKS keys\[0\] has a malformed 'x'$"),
        ({"keys": [good, good]}, "listed twice"),
        ({"keys": [good, "a string"]}, r"^JWKS keys\[1\] is not an object$"),
        ({"keys": "not a list"}, r"^JWKS must be an object with a non-empty 'keys' list$"),
    ]
    for jwks, reason in cases:
        with pytest.raises(InputError, match=reason):
            EngineKeyring.from_jwks(jwks)


def test_jwks_that_is_not_an_object_is_refused_by_name() -> None:
    # A JWKS fetched from a misconfigured endpoint may be a bare list of
    # keys; it is refused as input, not with an AttributeError.
    for doc in ([{"kty": "OKP"}], "keys", None):
        with pytest.raises(InputError, match=r"^JWKS must be an object with a non-empty 'keys' list$"):
            EngineKeyring.from_jwks(doc)  # type: ignore[arg-type]


def test_jwk_without_the_optional_alg_and_use_members_is_accepted(keyring: EngineKeyring) -> None:
    # RFC 7517 makes "alg" and "use" optional; a key without them is an
    # EdDSA signing key by its kty/crv and must be accepted, while a key
    # that names another algorithm or use is refused (above).
    good = keyring.jwks(NOW)["keys"][0]
    bare = {k: v for k, v in good.items() if k not in ("alg", "use")}
    parsed = EngineKeyring.from_jwks({"keys": [bare]})
    assert list(parsed) == [good["kid"]]
    assert public_raw(parsed[good["kid"]]) == b64url_decode(good["x"])


def test_public_jwk_names_the_key_by_its_thumbprint_unless_told_otherwise() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    assert public_jwk(key)["kid"] == jwk_thumbprint(key)
    assert public_jwk(key, "chosen")["kid"] == "chosen"


def _race_worker(key_dir: str, barrier: Any, out: Any) -> None:
    # A timeout, so that a worker that never reaches the barrier fails the
    # test instead of hanging it.
    barrier.wait(timeout=30)
    out.put(EngineKeyring.load_or_create(Path(key_dir)).current_kid)


def test_concurrent_first_use_yields_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for attempt in range(3):
        key_dir = tmp_path / f"race-{attempt}"
        barrier = ctx.Barrier(3)
        out = ctx.Queue()
        procs = [ctx.Process(target=_race_worker, args=(str(key_dir), barrier, out), daemon=True) for _ in range(3)]
        try:
            for p in procs:
                p.start()
            kids = {out.get(timeout=20) for _ in procs}
            for p in procs:
                p.join(timeout=20)
                assert p.exitcode == 0
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join(timeout=10)
        assert len(kids) == 1, f"racing processes created {len(kids)} keys"
        assert [p.stem for p in key_dir.glob("*.pem")] == list(kids)


def test_concurrent_rotations_lose_no_key(tmp_path: Path) -> None:
    # Each rotation reads the keyring, adds a key and writes it back; two at once without the exclusive
    # lock would each write their own copy, and one new key would vanish from the JWKS while its warrants
    # are out (they would no longer verify), its private file left behind.
    import threading

    key_dir = tmp_path / "k"
    EngineKeyring.load_or_create(key_dir)
    rings = [EngineKeyring.load_or_create(key_dir) for _ in range(4)]
    barrier = threading.Barrier(len(rings))
    made: list[str] = []
    lock = threading.Lock()

    def rotate(ring: EngineKeyring) -> None:
        barrier.wait(timeout=30)
        for _ in range(5):
            kid = ring.rotate(now=NOW)
            with lock:
                made.append(kid)

    threads = [threading.Thread(target=rotate, args=(r,), daemon=True) for r in rings]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
        assert not th.is_alive()
    final = EngineKeyring.load_or_create(key_dir)
    kids = {k["kid"] for k in final.jwks(NOW, include_expired=True)["keys"]}
    assert len(made) == 20 and set(made) <= kids and len(kids) == 21
    assert [p.stem for p in key_dir.glob("*.pem")] == [final.current_kid]


def test_engine_key_files_are_private(keyring: EngineKeyring) -> None:
    key_dir = keyring.key_dir
    assert _mode(key_dir) == 0o700
    assert _mode(key_dir / f"{keyring.current_kid}.pem") == 0o600
    assert _mode(key_dir / STATE_FILE) == 0o600
    keyring.rotate(now=NOW)
    assert _mode(key_dir / f"{keyring.current_kid}.pem") == 0o600
    assert _mode(key_dir / STATE_FILE) == 0o600


def test_group_readable_engine_key_is_refused(keyring: EngineKeyring) -> None:
    os.chmod(keyring.key_dir / f"{keyring.current_kid}.pem", 0o644)
    with pytest.raises(ConfigError, match="accessible by group or others"):
        EngineKeyring.load_or_create(keyring.key_dir)


def test_group_writable_key_directory_is_refused(tmp_path: Path) -> None:
    key_dir = tmp_path / "k"
    key_dir.mkdir(mode=0o700)
    os.chmod(key_dir, 0o770)  # noqa: S103 - the unsafe mode is what this test must see refused.
    with pytest.raises(ConfigError, match="writable by group or others"):
        EngineKeyring.load_or_create(key_dir)


def test_approver_key_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "alice.pem"
    public_text = generate_approver_key(path)
    assert public_text.startswith("ed25519:") and _mode(path) == 0o600
    before = path.read_bytes()
    with pytest.raises(InputError, match=f"^refusing to overwrite key file {path} \\(keys are never overwritten: "
                       "choose another path, or delete the old key deliberately first\\)$") as exc:
        generate_approver_key(path)
    assert exc.value.code == "file_exists"
    assert path.read_bytes() == before
    assert isinstance(load_approver_key(path), Ed25519PrivateKey)


def test_load_approver_key_refusals(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(InputError, match=f"^key file {tmp_path / 'missing.pem'} does not exist$"):
        load_approver_key(tmp_path / "missing.pem")
    rsa_like = tmp_path / "ec.pem"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_like.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    # The class's name as this cryptography version spells it (the message names what the file holds).
    with pytest.raises(InputError, match=f"^key file {rsa_like} holds a {type(ec_key).__name__}, not an Ed25519 "
                                         "private key$"):
        load_approver_key(rsa_like)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(InputError,
                       match=f"^key file {garbage} is not a PEM private key \\(or the password is wrong\\)$"):
        load_approver_key(garbage)
    loose = tmp_path / "loose.pem"
    generate_approver_key(loose)
    os.chmod(loose, 0o644)
    with caplog.at_level(logging.WARNING, logger="hitlgate.engine.keys.keyring"):
        load_approver_key(loose)
    assert "accessible by group or others" in caplog.text


def test_private_approver_key_loads_without_a_warning_and_through_a_symlink(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Approvers keep keys in a vault mount or dotfiles repo and link them;
    # the link is followed (the mode checked is the target's), and a 0600
    # key gives no warning, so the warning still means something.
    real = tmp_path / "vault" / "alice.pem"
    real.parent.mkdir()
    generate_approver_key(real)
    link = tmp_path / "alice.pem"
    link.symlink_to(real)
    with caplog.at_level(logging.WARNING, logger="hitlgate.engine.keys.keyring"):
        key = load_approver_key(link)
    assert isinstance(key, Ed25519PrivateKey)
    assert caplog.records == []


def test_unreadable_approver_key_path_is_refused_with_the_reason(tmp_path: Path) -> None:
    loop = tmp_path / "loop.pem"
    loop.symlink_to(loop)
    with pytest.raises(InputError, match=f"^cannot read key file {loop}: Too many levels of symbolic links$"):
        load_approver_key(loop)


def test_encrypted_approver_key_needs_its_password(tmp_path: Path) -> None:
    path = tmp_path / "alice.pem"
    generate_approver_key(path, password=b"correct horse")
    with pytest.raises(InputError, match="encrypted|password"):
        load_approver_key(path)
    assert isinstance(load_approver_key(path, password=b"correct horse"), Ed25519PrivateKey)


def test_a_retired_key_stays_in_the_jwks_for_an_hour_by_default(tmp_path: Path) -> None:
    ring = EngineKeyring.load_or_create(tmp_path / "k")
    old = ring.current_kid
    ring.rotate(now=NOW)
    assert old in {k["kid"] for k in ring.jwks(NOW + timedelta(seconds=3599))["keys"]}
    assert old not in {k["kid"] for k in ring.jwks(NOW + timedelta(seconds=3600))["keys"]}

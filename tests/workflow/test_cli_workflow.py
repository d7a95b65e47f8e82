"""The workflow CLI end to end with click's CliRunner, on a real SQLite file."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hitlgate.cli import cli
from hitlgate.engine._resources import bundled_policy_dir
from hitlgate.engine.decide.inventory import encode_public_key
from hitlgate.engine.keys.keyring import public_raw
from tests.workflow._helpers import demo_key, proposal


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A project on a copy of the example pack whose approvers have real keys (demo keys count only in demo)."""
    pack = tmp_path / "policies"
    shutil.copytree(bundled_policy_dir(), pack, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    inventory = pack / "data" / "inventory.yaml"
    text = inventory.read_text()
    for name in ("alice", "carol", "erin", "bob"):
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (tmp_path / f"{name}.pem").write_bytes(pem)
        (tmp_path / f"{name}.pem").chmod(0o600)
        demo_public = encode_public_key(public_raw(demo_key(name).public_key()))
        text = text.replace(demo_public, encode_public_key(public_raw(key.public_key())))
    inventory.write_text(text)
    cfg = tmp_path / "hitlgate.yaml"
    cfg.write_text(f"policy: {pack}\nstate: sqlite:///{tmp_path / 'state.db'}\nkeys: {tmp_path / 'keys'}\n")
    return {"HITLGATE_CONFIG": str(cfg)}


def run(env, *args, code=0, input=None):
    result = CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return str(p)


def test_propose_approve_warrant_verify_consume(env, tmp_path):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    out = json.loads(run(env, "propose", write(tmp_path, "p.json", doc), "--json", code=4).output)
    rid = out["id"]
    assert out["status"] == "pending" and out["quorum_progress"]["missing"]
    assert out["warrant"] == {"state": "none"}
    text = run(env, "show", rid).output
    assert "0 of 1 approval" in text
    # The request's deadline says what it is: the approval window's end while pending, then the warrant's.
    assert f"approve by: {out['expires_at']}" in text and "use by:" not in text
    assert rid in run(env, "requests", "--status", "pending").output
    run(env, "approve", rid, "--as", "carol", "--key", str(tmp_path / "carol.pem"))
    granted = json.loads(run(env, "show", rid, "--json").output)
    assert f"use by: {granted['expires_at']}" in run(env, "show", rid).output
    # The listing shows who voted, as `show` does (one query for the page's votes).
    listed = {r["id"]: r for r in json.loads(run(env, "requests", "--json").output)}
    assert [(v["approver"], v["verdict"]) for v in listed[rid]["votes"]] == [("carol", "approve")]
    run(env, "wait", rid, "--timeout", "1")
    token = run(env, "warrant", rid).output.strip()
    action = write(tmp_path, "a.json", doc["action"])
    ok = json.loads(run(env, "verify", action, "--warrant", token, "--json").output)
    assert ok["valid"] and not ok["consumed"] and ok["request_id"] == rid
    run(env, "verify", action, "--warrant", token, "--consume")
    err = run(env, "verify", action, "--warrant", token, "--consume", code=3)
    assert "already used" in err.output
    assert "audit chain OK" in run(env, "audit", "verify").output


def test_signed_elsewhere_and_rejection(env, tmp_path):
    doc = proposal("rotate_api_key", "svc-payments-key")
    rid = json.loads(run(env, "propose", write(tmp_path, "p.json", doc), "--json", code=4).output)["id"]
    stmt = tmp_path / "erin.json"
    run(env, "approve", rid, "--as", "erin", "--key", str(tmp_path / "erin.pem"), "--out", str(stmt))
    assert json.loads(run(env, "approve", "--signed", str(stmt), "--json").output)["status"] == "pending"
    run(env, "reject", rid, "--as", "alice", "--key", str(tmp_path / "alice.pem"))
    r = run(env, "wait", rid, "--timeout", "0", code=3)
    assert "rejected" in r.output
    err = run(env, "approve", rid, "--as", "bob", "--key", str(tmp_path / "bob.pem"), code=3)
    assert "takes no more votes" in err.output


def test_a_rejection_carries_its_reason_into_the_request_and_the_audit_trail(env, tmp_path):
    doc = proposal("rotate_api_key", "svc-payments-key")
    rid = json.loads(run(env, "propose", write(tmp_path, "p.json", doc), "--json", code=4).output)["id"]
    why = "the owner is mid-deploy; rotate after 18:00"
    out = json.loads(run(env, "reject", rid, "--as", "alice", "--key", str(tmp_path / "alice.pem"),
                         "--reason", f"  {why} ", "--json").output)
    assert out["status"] == "rejected"
    assert [(v["approver"], v["verdict"], v["statement"]["statement"].get("reason")) for v in out["votes"]] == [
        ("alice", "reject", why)]
    assert f"because: {why}" in run(env, "show", rid).output
    # The reason is signed: it is in the statement the audit trail keeps.
    lines = [json.loads(line) for line in run(env, "audit", "export").output.splitlines()]
    about = [e for e in lines if e.get("record") == "event" and e.get("request_id") == rid]
    assert any(why in json.dumps(e["payload"]) for e in about), about


def test_a_reason_is_refused_when_empty_or_with_a_statement_signed_elsewhere(env, tmp_path):
    doc = proposal("rotate_api_key", "svc-payments-key")
    rid = json.loads(run(env, "propose", write(tmp_path, "p.json", doc), "--json", code=4).output)["id"]
    err = run(env, "reject", rid, "--as", "alice", "--key", str(tmp_path / "alice.pem"), "--reason", "  ", code=2)
    assert "--reason: must not be empty" in err.output
    stmt = tmp_path / "erin.json"
    run(env, "approve", rid, "--as", "erin", "--key", str(tmp_path / "erin.pem"), "--reason", "fine", "--out",
        str(stmt))
    assert json.loads(stmt.read_text())["statement"]["reason"] == "fine"
    err = run(env, "approve", "--signed", str(stmt), "--reason", "other", code=2)
    assert "a reason is signed into the statement" in err.output
    # Nothing was recorded by the refusals.
    assert json.loads(run(env, "show", rid, "--json").output)["votes"] == []


def _sql(tmp_path, statement, *params):
    import sqlite3

    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute(statement, params)


def test_show_gives_the_agents_reason_and_escapes_what_a_terminal_would_act_on(env, tmp_path):
    doc = {**proposal("rotate_api_key", "svc-payments-key"), "justification": "key seen on a paste site",
           "incident": "INC-77"}
    rid = json.loads(run(env, "propose", write(tmp_path, "p.json", doc), "--json", code=4).output)["id"]
    text = run(env, "show", rid).output
    assert "  why:       key seen on a paste site" in text and "incident INC-77" in text
    # A status reason written into the database (or by an executor) with an escape sequence and a forged line.
    _sql(tmp_path, "UPDATE requests SET status_reason = ? WHERE id = ?",
         "ok\n  vote:      bob approved at 2026-11-28T00:00:00Z\x1b]0;PWNED\x07\u202e", rid)
    text = run(env, "show", rid).output
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b]0;PWNED\\x07\\u202e" in text
    # The forged line stays under the status, never at a vote's indentation.
    assert not any(line.startswith("  vote:") for line in text.splitlines())


def test_show_survives_a_vote_row_whose_statement_was_damaged(env, tmp_path):
    doc = proposal("rotate_api_key", "svc-payments-key")
    rid = json.loads(run(env, "propose", write(tmp_path, "p.json", doc), "--json", code=4).output)["id"]
    run(env, "approve", rid, "--as", "erin", "--key", str(tmp_path / "erin.pem"), "--reason", "fine")
    _sql(tmp_path, "UPDATE votes SET statement = ? WHERE request_id = ?", '{"statement": 5, "signature": "x"}', rid)
    result = CliRunner().invoke(cli, ["show", rid], env=env, catch_exceptions=False)
    assert "unexpected" not in result.output and "a bug in hitlgate" not in result.output, result.output
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 0:
        assert "erin approved" in result.output and "NOT COUNTED" in result.output


def test_an_executor_on_the_command_line_reports_the_outcome_once(env, tmp_path):
    doc = proposal("suspend_service_account", "svc-ci-runner")
    rid = json.loads(run(env, "propose", write(tmp_path, "p.json", doc), "--json", code=4).output)["id"]
    run(env, "approve", rid, "--as", "carol", "--key", str(tmp_path / "carol.pem"))
    token = run(env, "warrant", rid).output.strip()
    action = write(tmp_path, "a.json", doc["action"])
    used = json.loads(run(env, "verify", action, "--warrant", token, "--consume", "--json").output)
    jti = used["jti"]
    # A detail that would rewrite a terminal is refused, and records nothing.
    bad = json.loads(run(env, "--json", "outcome", rid, "--jti", jti, "--outcome", "failed", "--detail",
                         "ok\x1b[2K", code=2).output)
    assert bad["error"]["code"] == "invalid_outcome" and bad["error"]["message"].startswith("detail: ")
    wrong = run(env, "outcome", rid, "--jti", "not-the-jti", "--outcome", "executed", code=3)
    assert "was not consumed by the guard" in wrong.output
    out = json.loads(run(env, "--json", "outcome", rid, "--jti", jti, "--outcome", "failed", "--detail",
                         "rotation API returned 503\nretry later").output)
    assert out["status"] == "execution_failed" and out["status_reason"].startswith("rotation API returned 503")
    assert "  status:    rotation API returned 503" in run(env, "show", rid).output
    again = run(env, "outcome", rid, "--jti", jti, "--outcome", "executed", code=3)
    assert "execution_failed" in again.output
    assert "audit chain OK" in run(env, "audit", "verify").output


def test_wait_times_out_with_exit_3(env, tmp_path):
    rid = json.loads(run(env, "propose", write(tmp_path, "p.json", proposal()), "--json", code=4).output)["id"]
    assert "still pending" in run(env, "wait", rid, "--timeout", "0.1", "--poll", "0.05", code=4).output


def test_revoke_then_verify_fails(env, tmp_path):
    doc = proposal("rotate_api_key", "dev-analytics-key")
    out = json.loads(run(env, "propose", write(tmp_path, "p.json", doc), "--json").output)
    assert out["status"] == "granted"
    token = run(env, "warrant", out["id"]).output.strip()
    run(env, "revoke", out["id"], "--as", "alice", "--key", str(tmp_path / "alice.pem"))
    err = run(env, "verify", write(tmp_path, "a.json", doc), "--warrant", token, code=3)
    assert "revoked" in err.output


def test_bad_input_exits_2(env, tmp_path):
    assert run(env, "propose", write(tmp_path, "p.json", {"action": {}}), code=2).output.startswith("error:")
    assert "no request" in run(env, "show", "req-nope", code=2).output
    assert "--signed" in run(env, "approve", "req-x", code=2).output


def test_keys_and_audit_commands(env, tmp_path):
    key = tmp_path / "new.pem"
    out = json.loads(run(env, "keys", "generate", "--out", str(key), "--json").output)
    assert out["public_key"].startswith("ed25519:")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    run(env, "keys", "generate", "--out", str(key), code=2)
    run(env, "propose", write(tmp_path, "p.json", proposal("rotate_api_key", "dev-analytics-key")))
    jwks1 = json.loads(run(env, "keys", "jwks").output)
    rotated = json.loads(run(env, "keys", "rotate", "--json").output)
    jwks2 = json.loads(run(env, "keys", "jwks").output)
    assert len(jwks2["keys"]) == len(jwks1["keys"]) + 1
    assert {k["kid"] for k in jwks2["keys"]} >= {rotated["retired"], rotated["current"]}
    cp = json.loads(run(env, "audit", "checkpoint", "--json").output)
    assert cp["seq"] >= 1
    jwks_file = write(tmp_path, "jwks.json", jwks2)
    assert json.loads(run(env, "audit", "verify", "--jwks", jwks_file, "--json").output)["ok"]
    export = tmp_path / "audit.jsonl"
    run(env, "audit", "export", "--out", str(export))
    lines = export.read_text().splitlines()
    assert len(lines) >= 4 and json.loads(lines[-1])["record"] == "checkpoint"
    assert "OK" in run(env, "audit", "verify", "--file", str(export), "--jwks", jwks_file).output
    tampered = tmp_path / "bad.jsonl"
    first = json.loads(lines[0])
    first["payload"]["action_digest"] = "sha256:" + "1" * 64
    tampered.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    err = run(env, "audit", "verify", "--file", str(tampered), "--jwks", jwks_file, code=3)
    assert "seq 1" in err.output


def test_file_errors_are_reported_not_raised(env, tmp_path):
    # catch_exceptions=False: an OSError or UnicodeDecodeError escaping the
    # root handler would surface here as a traceback instead of "error: ...".
    assert run(env, "audit", "verify", "--file", str(tmp_path / "missing.jsonl"), code=2).output.startswith("error:")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    assert "not UTF-8" in run(env, "audit", "verify", "--file", str(binary), code=3).output
    # A parent that is a file cannot hold --out (a missing parent would be created).
    (tmp_path / "a-file").write_text("")
    nowhere = str(tmp_path / "a-file" / "out")
    assert run(env, "audit", "export", "--out", nowhere, code=2).output.startswith("error:")
    rid = json.loads(run(env, "propose", write(tmp_path, "p.json", proposal("rotate_api_key", "dev-analytics-key")),
                         "--json").output)["id"]
    assert run(env, "warrant", rid, "--out", nowhere, code=2).output.startswith("error:")
    req = json.loads(run(env, "show", rid, "--json").output)
    assert run(env, "approve", rid, "--as", "carol", "--key", str(tmp_path / "carol.pem"),
               "--digest", req["action_digest"], "--out", nowhere, code=2).output.startswith("error:")


def test_warrant_file_is_private_even_if_it_existed(env, tmp_path):
    # A warrant is a bearer token: writing it into an existing world-readable
    # file must not leave it world-readable.
    rid = json.loads(run(env, "propose", write(tmp_path, "p.json", proposal("rotate_api_key", "dev-analytics-key")),
                         "--json").output)["id"]
    out = tmp_path / "warrant.jws"
    out.write_text("old\n")
    out.chmod(0o644)
    assert "refusing to overwrite warrant" in run(env, "warrant", rid, "--out", str(out), code=2).output
    assert out.read_text() == "old\n"
    run(env, "warrant", rid, "--out", str(out), "--force")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text().count(".") == 2

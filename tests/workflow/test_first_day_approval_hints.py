"""The two first-day approval mistakes get an error that says how to fix them.

* Signing offline (``approve ... --out``) on a machine without the state
  store, without ``--digest``: the request cannot be looked up, and "no
  request with id ..." alone does not say that ``--digest`` is the way out.
* Signing with a freshly generated key while the inventory still registers
  the starter's demo key: the signature does not verify, and the error must
  say that the registered key is the demo key and how to register one's own.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from hitlgate.cli import cli
from tests.conftest import make_proposal


def _run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def test_offline_signing_without_digest_names_digest(tmp_path: Path) -> None:
    # A machine of its own: a store that has never seen the request.
    offline = tmp_path / "offline.yaml"
    offline.write_text(f"state: sqlite:///{tmp_path / 'elsewhere.db'}\nkeys: {tmp_path / 'keys'}\n")
    key = tmp_path / "alice.pem"
    assert _run(offline, "keys", "generate", "--out", str(key)).exit_code == 0
    out = tmp_path / "alice.json"
    result = _run(offline, "approve", "req-from-elsewhere", "--as", "alice", "--key", str(key), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "no request with id 'req-from-elsewhere'" in result.stderr
    assert "--digest" in result.stderr
    assert "hitlgate show req-from-elsewhere --json" in result.stderr
    assert "action_digest" in result.stderr
    assert not out.exists()
    as_json = json.loads(_run(offline, "--json", "approve", "req-from-elsewhere", "--as", "alice", "--key", str(key),
                              "--out", str(out)).stdout)
    assert as_json["error"]["code"] == "not_found" and "--digest" in as_json["error"]["message"]
    # Without --out the hint would be wrong (there is nothing to sign offline): the error stays as it was.
    submitted = _run(offline, "approve", "req-from-elsewhere", "--as", "alice", "--key", str(key))
    assert submitted.exit_code == 2 and "--digest" not in submitted.stderr


def test_own_key_against_registered_demo_key_says_register_yours(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    config = proj / "hitlgate.yaml"
    proposal = tmp_path / "p.json"
    proposal.write_text(json.dumps(make_proposal("suspend_service_account", "svc-ci-runner")))
    proposed = _run(config, "--json", "propose", str(proposal))
    assert proposed.exit_code == 4, proposed.output
    rid = json.loads(proposed.stdout)["id"]
    # carol generated her key as the README says, but the inventory still has the starter's demo key.
    key = tmp_path / "carol.pem"
    assert _run(config, "keys", "generate", "--out", str(key)).exit_code == 0
    result = _run(config, "approve", rid, "--as", "carol", "--key", str(key))
    assert result.exit_code == 3, result.output
    assert "does not verify" in result.stderr
    assert "carol's registered key is the starter's demo key" in result.stderr
    assert "hitlgate keys generate --out ~/.hitlgate/carol.pem" in result.stderr
    assert "approvers.carol.public_key" in result.stderr
    error = json.loads(_run(config, "--json", "approve", rid, "--as", "carol", "--key", str(key)).stdout)["error"]
    assert error["code"] == "demo_key"

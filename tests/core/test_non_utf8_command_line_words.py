"""Encodings on the command line: a word that becomes data (a request id, a name, a key) must be UTF-8.

The shell passes Python a byte that is not UTF-8 as a lone surrogate
(``surrogateescape``). Such an id used to reach the store and end as an
internal error (``unexpected UnicodeEncodeError``, exit 1); it is refused as
invalid input naming the argument and the byte (``bad_encoding``, exit 2),
before anything is read or written.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests._cli_process import HITLGATE, cli_env
from tests.core._hostile import project, run

PACK = Path(__file__).resolve().parents[2] / "policies"


@pytest.mark.parametrize(("args", "problem"), [
    (["show", "req-\udcff"], "REQUEST_ID: byte 0xff (character 5)"),
    (["warrant", "req-\udcff"], "REQUEST_ID: byte 0xff (character 5)"),
    (["wait", "re\udcff", "--timeout", "0"], "REQUEST_ID: byte 0xff (character 3)"),
    (["approve", "req-\udcff", "--as", "carol", "--key", "k.pem"], "REQUEST_ID: byte 0xff (character 5)"),
    (["approve", "req-1", "--as", "caro\udcff", "--key", "k.pem"], "--as: byte 0xff (character 5)"),
    (["revoke", "req-\udcff", "--as", "carol", "--key", "k.pem"],
     "REQUEST_ID: byte 0xff (character 5)"),
    (["audit", "export", "--request", "\udcfe"], "--request: byte 0xfe (character 1)"),
    (["approvers", "passkeys", "\udcff"], "NAME: byte 0xff (character 1)"),
    (["approvers", "revoke", "\udcff"], "WHICH: byte 0xff (character 1)"),
    (["inventory", "show", "identities", "svc-\udcff"], "ID: byte 0xff (character 5)"),
    (["apikey", "revoke", "k\udcff"], "KEY: byte 0xff (character 2)"),
    (["requests", "--cursor", "2026-11-27T21:16:41.323510Z~req-\udcff"], "--cursor: byte 0xff (character 33)"),
    (["keys", "reinit", "--reason", "lost \udcff"], "--reason: byte 0xff (character 6)"),
    (["audit", "anchor", "--reinit", "--reason", "\udcff"], "--reason: byte 0xff (character 1)"),
    (["serve", "--host", "\udcff"], "--host: byte 0xff (character 1)"),
], ids=["show", "warrant", "wait", "approve", "approve-as", "revoke", "export-request", "passkeys", "passkey-revoke",
        "inventory-show", "apikey-revoke", "requests-cursor", "keys-reinit-reason", "anchor-reinit-reason",
        "serve-host"])
def test_a_word_that_is_not_utf8_is_refused_naming_it(tmp_path: Path, args: list[str], problem: str) -> None:
    config = project(tmp_path, PACK)
    result = run(["--json", *args], config=config)
    doc = json.loads(result.output)
    assert result.exit_code == 2, result.output
    assert doc["error"]["code"] == "bad_encoding"
    assert doc["error"]["problems"] == [f"{problem} is not UTF-8"]


def test_the_shell_s_bytes_are_refused_by_a_real_process(tmp_path: Path) -> None:
    config = project(tmp_path, PACK)
    env = {**cli_env(), "HITLGATE_CONFIG": str(config)}
    proc = subprocess.run([*map(os.fsencode, HITLGATE), b"--json", b"show", b"req-\xfe"], capture_output=True,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr.decode(errors="replace")
    doc = json.loads(proc.stdout)
    assert doc["error"]["problems"] == ["REQUEST_ID: byte 0xfe (character 5) is not UTF-8"]
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["show"], ["warrant"], ["inventory", "show", "identities"]],
                         ids=["show", "warrant", "inventory-show"])
def test_an_unknown_huge_id_is_echoed_at_most_60_characters(tmp_path: Path, args: list[str]) -> None:
    # The README promises error messages never echo a huge value; a not-found id used to come back whole.
    config = project(tmp_path, PACK)
    result = run(["--json", *args, "a" * 100_000], config=config)
    doc = json.loads(result.stdout)
    assert result.exit_code == 2, result.output
    assert doc["error"]["code"] == "not_found"
    assert "a" * 59 + "…" in doc["error"]["message"]
    assert len(result.stdout) < 1000

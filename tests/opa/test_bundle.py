"""OPA bundles: deterministic, complete, and served unchanged by a real OPA."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import requests
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine.decide._bundle import build_bundle, write_bundle
from hitlgate.engine.decide.policy import PolicyPack
from tests.opa.conftest import OpaServer


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def _read(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def test_same_pack_gives_byte_identical_bundle(bundled_pack: PolicyPack, tmp_path: Path) -> None:
    first = build_bundle(bundled_pack)
    # A fresh copy of the pack (new inodes, new mtimes) must not change a byte.
    shutil.copytree(bundled_pack.policy_dir, tmp_path / "p", ignore=shutil.ignore_patterns("__*"))
    again = PolicyPack.load(tmp_path / "p", [tmp_path / "p" / "data"])
    assert again.revision == bundled_pack.revision
    assert build_bundle(again) == first
    assert write_bundle(again, tmp_path / "b.tar.gz").read_bytes() == first


def test_bundle_holds_modules_and_manifest_but_no_inventory(bundled_pack: PolicyPack) -> None:
    data = build_bundle(bundled_pack)
    members = _members(data)
    names = list(members)
    assert names == sorted(names)
    # The inventory stays local: each query carries the target's facts.
    assert ".manifest" in names and "data.json" not in names
    rego = [n for n in names if n.endswith(".rego")]
    assert rego == [name for name, _ in bundled_pack.modules]
    assert not any(n.endswith("_test.rego") for n in names), "unit tests must not ship in the bundle"
    for m in members.values():
        assert (m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, "", "", 0o644)
    manifest = json.loads(_read(data, ".manifest"))
    assert manifest == {"revision": bundled_pack.modules_revision, "roots": ["hitlgate", "inventory"]}
    assert not any("svc-payments-key" in _read(data, n).decode() for n in names), "no inventory in the bundle"


def test_policy_bundle_cli_writes_the_same_bytes(bundled_pack: PolicyPack, tmp_path: Path) -> None:
    out = tmp_path / "cli.tar.gz"
    result = CliRunner().invoke(cli, ["policy", "bundle", "--out", str(out)], env={"HITLGATE_CONFIG": ""})
    assert result.exit_code == 0, result.output
    assert bundled_pack.modules_revision in result.output
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(build_bundle(bundled_pack)).digest()


def test_opa_serves_the_bundle_unchanged(opa_server: OpaServer, bundled_pack: PolicyPack) -> None:
    session = requests.Session()
    bundles = session.get(f"{opa_server.url}/v1/data/system/bundles", timeout=5).json()["result"]
    (info,) = bundles.values()
    assert info["manifest"] == {"revision": bundled_pack.modules_revision, "roots": ["hitlgate", "inventory"]}
    # The inventory root is owned by the bundle and empty: the facts arrive in the input.
    served = session.get(f"{opa_server.url}/v1/data/inventory", timeout=5).json()
    assert served.get("result") in (None, {})
    policies = session.get(f"{opa_server.url}/v1/policies", timeout=5).json()["result"]
    raw = {p["id"].rsplit("/", 1)[-1]: p["raw"] for p in policies}
    assert raw == {Path(name).name: src for name, src in bundled_pack.modules}


def test_opa_refuses_writes_under_the_bundle_roots(opa_server: OpaServer) -> None:
    # The inventory decides; nobody may change it behind the manifest's back.
    r = requests.put(f"{opa_server.url}/v1/data/inventory/protected", json=[], timeout=5)
    assert r.status_code >= 400

"""`hitlgate opa install` and scripts/install-opa: one cache, progress instead of 85 download lines.

A network build takes minutes, so the build tests run a stand-in ``go``
that behaves like ``go install`` (download lines, a quiet compile, the
binary in $GOBIN); the binary it installs is the real OPA.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine.decide._opabin import OPA_VERSION, OpaInstallError, cached_opa_path, install

REPO = Path(__file__).resolve().parents[2]


def _cache_with(opa_bin: Path, root: Path) -> Path:
    bindir = root / "opa" / OPA_VERSION / "bin"
    bindir.mkdir(parents=True)
    (bindir / "opa").symlink_to(opa_bin)
    return bindir / "opa"


def _fake_go(tmp_path: Path, body: str) -> Path:
    go = tmp_path / "fakebin" / "go"
    go.parent.mkdir()
    go.write_text("#!/bin/sh\n" + body)
    go.chmod(0o755)
    return go


def test_cache_hit_prints_the_path_and_builds_nothing(opa_bin, tmp_path):
    cached = _cache_with(opa_bin, tmp_path / "cache")
    env = {"HITLGATE_CACHE": str(tmp_path / "cache"), "PATH": str(tmp_path / "nowhere")}
    result = CliRunner().invoke(cli, ["opa", "install"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{cached}\n"
    assert "already in the cache" in result.stderr


def test_install_opa_script_uses_the_same_cache(opa_bin, tmp_path):
    cached = _cache_with(opa_bin, tmp_path / "cache")
    env = {**os.environ, "HITLGATE_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([str(REPO / "scripts" / "install-opa")], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    assert out.stdout == f"{cached}\n"


def test_go_missing_is_a_clear_error(tmp_path):
    env = {"HITLGATE_CACHE": str(tmp_path / "cache"), "PATH": str(tmp_path / "nowhere")}
    result = CliRunner().invoke(cli, ["opa", "install"], env=env)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "needs Go 1.21 or newer, and `go` is not on PATH" in result.stderr
    assert "set HITLGATE_OPA" in result.stderr


def test_first_build_shows_elapsed_time_not_every_download(opa_bin, tmp_path, monkeypatch):
    monkeypatch.setenv("HITLGATE_CACHE", str(tmp_path / "cache"))
    go = _fake_go(tmp_path, (
        'i=0; while [ $i -lt 85 ]; do echo "go: downloading example.com/mod$i v1.0.0" >&2; i=$((i+1)); done\n'
        f'sleep 1.5\nln -s "{opa_bin}" "$GOBIN/opa"\n'
    ))
    lines: list[str] = []
    path = install(say=lines.append, go=str(go), tick_seconds=0.4)
    assert path == cached_opa_path() and path.is_file()
    text = "\n".join(lines)
    assert "go: downloading" not in text
    assert "2-5 minutes on an idle machine, much longer on a busy one" in text
    assert "(85 modules downloaded, compiling)" in text
    assert lines[-1].startswith(f"built OPA {OPA_VERSION} in ")
    assert len(lines) < 12


def test_a_failed_build_says_what_go_said(tmp_path, monkeypatch):
    monkeypatch.setenv("HITLGATE_CACHE", str(tmp_path / "cache"))
    go = _fake_go(tmp_path, 'echo "go: downloading x v1" >&2\n'
                            'echo "proxy.golang.org: connection refused" >&2\nexit 1\n')
    with pytest.raises(OpaInstallError, match=r"failed \(exit 1\):\nproxy.golang.org: connection refused") as info:
        install(say=lambda _line: None, go=str(go), tick_seconds=0.4)
    assert info.value.code == "opa_build_failed"

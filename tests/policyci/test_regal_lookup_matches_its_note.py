"""Regal is looked for where ``go install`` puts it, and the note saying it is missing names no home path.

The note said <cache>/regal/bin while its own hint (`go install ...`)
installs to ~/go/bin, which was never searched; and the Markdown
pull-request comment carried the absolute /root/... path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine.config import Config
from hitlgate.engine.decide._policycheck import check_regal, find_regal


def test_regal_in_gobin_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HITLGATE_REGAL", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("GOBIN", str(tmp_path))
    regal = tmp_path / "regal"
    regal.write_text("#!/bin/sh\n")
    assert find_regal() == regal


def test_regal_in_home_go_bin_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HITLGATE_REGAL", "GOBIN", "GOPATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "go" / "bin").mkdir(parents=True)
    regal = tmp_path / "go" / "bin" / "regal"
    regal.write_text("#!/bin/sh\n")
    assert find_regal() == regal


def test_missing_regal_note_has_no_absolute_home_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HITLGATE_REGAL", "GOBIN", "GOPATH", "HITLGATE_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert CliRunner().invoke(cli, ["init", str(tmp_path / "proj")]).exit_code == 0
    step = check_regal(Config.from_file(tmp_path / "proj" / "hitlgate.yaml"))
    assert step.status == "note"
    assert str(tmp_path) not in step.summary
    assert "~/go/bin" in step.summary

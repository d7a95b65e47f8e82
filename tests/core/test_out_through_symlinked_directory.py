"""Attack: another user plants a symlinked *directory* in the path of ``--out``.

The safe writer checked only the last component for a link, so
``audit export --out sd/dirlink/x.jsonl`` or ``keys generate --out
sd/dirlink/k.pem`` wrote wherever ``dirlink`` pointed. The rule now (see
``hitlgate/engine/_files.py``): a symlink among the parent directories is
followed only when it is owned by the user running hitlgate or by root;
one owned by anyone else is refused with ``unsafe_path`` and nothing is
written. The walk itself uses ``O_NOFOLLOW`` per component, so the rule
also holds for the links a followed link points through.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from hitlgate.cli import cli
from hitlgate.engine._files import write_file
from hitlgate.errors import InputError

NOBODY = 65534
needs_root = pytest.mark.usefixtures("as_root")


def _plant(tmp_path: Path, *, owner: int | None) -> tuple[Path, Path]:
    """``sd/dirlink`` -> ``elsewhere``, the link owned by ``owner`` (None: by us)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sd = tmp_path / "sd"
    sd.mkdir()
    dirlink = sd / "dirlink"
    dirlink.symlink_to(elsewhere, target_is_directory=True)
    if owner is not None:
        os.lchown(dirlink, owner, owner)
    return dirlink, elsewhere


@needs_root
@pytest.mark.parametrize("secret", [True, False])
def test_write_through_another_users_directory_link_is_refused(tmp_path: Path, secret: bool) -> None:
    dirlink, elsewhere = _plant(tmp_path, owner=NOBODY)
    with pytest.raises(InputError, match=r"dirlink is a symbolic link owned by uid 65534") as exc:
        write_file(dirlink / "x.jsonl", "data\n", secret=secret)
    assert exc.value.code == "unsafe_path"
    assert list(elsewhere.iterdir()) == []


@needs_root
def test_link_deeper_in_the_chain_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    dirlink, elsewhere = _plant(tmp_path, owner=NOBODY)
    with pytest.raises(InputError, match=r"symbolic link owned by uid 65534"):
        write_file(dirlink / "new" / "deeper" / "k.pem", "key\n", secret=True)
    assert list(elsewhere.iterdir()) == []


@needs_root
def test_own_link_pointing_through_another_users_link_is_refused(tmp_path: Path) -> None:
    foreign, elsewhere = _plant(tmp_path, owner=NOBODY)
    mine = tmp_path / "mine"
    mine.symlink_to(foreign, target_is_directory=True)
    with pytest.raises(InputError, match=r"symbolic link owned by uid 65534"):
        write_file(mine / "x.jsonl", "data\n", secret=False)
    assert list(elsewhere.iterdir()) == []


@needs_root
@pytest.mark.parametrize("command", ["audit export", "keys generate"])
def test_cli_out_through_another_users_directory_link_exits_2(tmp_path: Path, command: str) -> None:
    proj = tmp_path / "proj"
    assert CliRunner().invoke(cli, ["init", str(proj)]).exit_code == 0
    dirlink, elsewhere = _plant(tmp_path, owner=NOBODY)
    args = {
        "audit export": ["audit", "export", "--out", str(dirlink / "x.jsonl")],
        "keys generate": ["keys", "generate", "--out", str(dirlink / "k.pem")],
    }[command]
    result = CliRunner().invoke(cli, ["--config", str(proj / "hitlgate.yaml"), "--json", *args])
    error = json.loads(result.stdout)["error"]
    assert (result.exit_code, error["code"]) == (2, "unsafe_path"), result.output
    assert list(elsewhere.iterdir()) == []


def test_own_directory_link_is_followed(tmp_path: Path) -> None:
    dirlink, elsewhere = _plant(tmp_path, owner=None)
    write_file(dirlink / "new" / "x.jsonl", "data\n", secret=False)
    assert (elsewhere / "new" / "x.jsonl").read_text() == "data\n"
    assert stat.S_IMODE((elsewhere / "new").stat().st_mode) == 0o700


def test_export_mode_is_never_group_or_world_writable(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        written = write_file(tmp_path / "export.jsonl", "data\n", secret=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(written.stat().st_mode) == 0o644

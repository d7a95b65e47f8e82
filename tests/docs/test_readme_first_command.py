"""The README's first command works as written on a fresh machine and ends with the demo.

A copy of this checkout (its tracked and untracked, not ignored files: no
``.venv``) runs the first line of the README's first ``sh`` block with a
clean environment: ``PATH=/usr/bin:/bin`` (so ``python3`` is the system's,
on Debian a PEP 668 "externally managed" one), a fresh ``HOME``, and only
pip's own settings passed through (index, certificates, ``--find-links``).
It must create ``.venv``, install into it, and print the demo through its
closing lines; a second run must reuse the virtualenv and skip pip.

To stay fast, the packages come from a wheelhouse in the hitlgate cache
(``$HITLGATE_CACHE/wheels``, one per ``pyproject.toml``): the first run fills
it with ``pip download``, later runs install from it without the network.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

pytestmark = pytest.mark.slow


def first_command() -> str:
    """The first line of the README's first ``sh`` block, without its comment."""
    block = re.search(r"^```sh\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
    assert block is not None, "the README has no sh block"
    return block.group(1).splitlines()[0].split("#", 1)[0].strip()


def _copy_checkout(dst: Path) -> None:
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def _clean_env(home: Path) -> dict[str, str]:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    # pip's own configuration (index, certificates, --find-links) and proxies
    # are how this machine reaches packages, not part of what is tested.
    env.update({k: v for k, v in os.environ.items()
                if k.startswith("PIP_") or k.lower() in {"http_proxy", "https_proxy", "no_proxy"}})
    return env


def _wheelhouse(checkout: Path, env: dict[str, str]) -> Path:
    """A directory with every wheel ``pip install -e .`` needs here, downloaded once per pyproject.toml."""
    cache = Path(os.environ.get("HITLGATE_CACHE") or Path.home() / ".cache" / "hitlgate")
    digest = hashlib.sha256((checkout / "pyproject.toml").read_bytes()).hexdigest()[:16]
    house = cache / "wheels" / digest
    if (house / ".complete").exists():
        return house
    house.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["python3", "-m", "pip", "download", "--quiet", "--dest", str(house), ".", "setuptools>=69", "wheel"],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=600, check=True,
    )
    (house / ".complete").touch()
    return house


def test_readme_first_command_on_a_fresh_checkout(tmp_path: Path) -> None:
    command = first_command()
    assert command == "./scripts/demo"
    checkout = tmp_path / "hitlgate"
    _copy_checkout(checkout)
    assert not (checkout / ".venv").exists()
    env = _clean_env(tmp_path / "home")
    (tmp_path / "home").mkdir()
    house = _wheelhouse(checkout, env)
    # No byte-compiling of every installed module (pip's default): most of the install's CPU time, and
    # not what is tested; the demo's imports compile what they use.
    env.update(PIP_FIND_LINKS=str(house), PIP_NO_INDEX="1", PIP_NO_COMPILE="1")

    first = subprocess.run(command, shell=True, cwd=checkout, env=env, capture_output=True, text=True,  # noqa: S602
                           timeout=300, check=False)
    out = first.stdout
    assert first.returncode == 0, out + first.stderr
    assert "==> creating the virtualenv .venv" in out
    assert "==> installing hitlgate into .venv" in out
    lines = out.rstrip("\n").splitlines()
    assert any(line.startswith("This demo shows how hitlgate decides") for line in lines)
    assert "8 actions ran, each only with its own warrant; 8 replays refused." in out
    # The demo's closing lines: how to get hitlgate on PATH, then three commands to try.
    assert [line.split("#")[0].strip() for line in lines[-5:]] == [
        "Try next:",
        "source .venv/bin/activate",
        "hitlgate init my-project",
        "cd my-project && hitlgate decide proposal.json",
        "hitlgate policy test",
    ]
    assert (checkout / ".venv" / "bin" / "hitlgate").exists()

    again = subprocess.run(command, shell=True, cwd=checkout, env=env, capture_output=True, text=True,  # noqa: S602
                           timeout=120, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "installing" not in again.stdout and "creating" not in again.stdout
    assert again.stdout.rstrip("\n").splitlines()[-3:] == lines[-3:]


def test_demo_help_installs_nothing(tmp_path: Path) -> None:
    # `scripts/demo --help` created .venv and ran pip (a minute, and the network) before it showed any help.
    copy = tmp_path / "checkout"
    (copy / "scripts").mkdir(parents=True)
    for name in ("demo", "_lib.sh"):
        shutil.copy2(REPO / "scripts" / name, copy / "scripts" / name)
    done = subprocess.run(["bash", str(copy / "scripts" / "demo"), "--help"], cwd=copy, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: scripts/demo [ARGS...]")
    assert "PYTHON  the interpreter that creates .venv" in done.stdout
    assert not (copy / ".venv").exists()

"""The pinned OPA binary: where it is cached, and building it with ``go install``.

One implementation for ``hitlgate opa install`` and ``scripts/install-opa``
(which runs this file by path, so it uses the standard library only and
imports nothing from hitlgate). OPA is built from source with
``go install github.com/open-policy-agent/opa@VERSION`` into
``$HITLGATE_CACHE/opa/VERSION/bin`` (default ``~/.cache/hitlgate``); no
release download and no vendored binary, so only the Go module proxy must be
reachable. The first build takes 2-5 minutes on an idle machine (much longer on a busy one); afterwards the cached
binary is reused.

Run as a script (``python3 _opabin.py``) it installs when needed and prints
the binary's path on stdout, and nothing else on stdout; progress goes to
stderr.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess  # noqa: S404 - runs go and opa with fixed arguments, no shell.
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

#: The OPA release the project pins (the differential tests judge regopy against it).
OPA_VERSION = "v1.22.3"
OPA_MODULE = "github.com/open-policy-agent/opa"

#: Seconds between two "still building" lines.
TICK_SECONDS = 15.0


class OpaInstallError(Exception):
    """OPA could not be installed; the message says why and what to do."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def cache_root() -> Path:
    """``$HITLGATE_CACHE``, else ``~/.cache/hitlgate``."""
    return Path(os.environ.get("HITLGATE_CACHE") or Path.home() / ".cache" / "hitlgate")


def cached_opa_path(version: str = OPA_VERSION) -> Path:
    """Where ``hitlgate opa install`` puts OPA ``version`` (it may not be there yet)."""
    return cache_root() / "opa" / version / "bin" / "opa"


def reports_version(opa: Path, version: str = OPA_VERSION) -> bool:
    """Whether ``opa`` runs and reports exactly ``version``."""
    if not (opa.is_file() and os.access(opa, os.X_OK)):
        return False
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv.
            [str(opa), "version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return f"Version: {version.removeprefix('v')}" in out.splitlines()


@contextlib.contextmanager
def _install_lock(bindir: Path) -> Iterator[None]:
    """Serialise concurrent first runs (parallel CI jobs, test sessions): the second waits for the first."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX; nothing to lock with.
        yield
        return
    with open(bindir / ".install.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _minutes(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def install(
    version: str = OPA_VERSION,
    *,
    say: Callable[[str], None] = _say,
    go: str | None = None,
    tick_seconds: float = TICK_SECONDS,
) -> Path:
    """Return the cached OPA ``version``, building it with ``go install`` first if it is missing.

    ``say`` receives progress lines: what is happening, that the first build
    takes minutes, and the elapsed time every ``tick_seconds`` instead of
    one line per downloaded module. Raises :class:`OpaInstallError` (code
    ``go_missing`` or ``opa_build_failed``).
    """
    opa = cached_opa_path(version)
    if reports_version(opa, version):
        return opa
    go = go or shutil.which("go")
    if go is None:
        raise OpaInstallError(
            f"building OPA {version} needs Go 1.21 or newer, and `go` is not on PATH. Install Go "
            "(https://go.dev/dl/), or use any opa binary you already have: put it on PATH or set HITLGATE_OPA.",
            code="go_missing",
        )
    bindir = opa.parent
    try:
        bindir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OpaInstallError(f"cannot create {bindir}: {exc.strerror or exc}", code="opa_build_failed") from exc
    with _install_lock(bindir):
        if reports_version(opa, version):
            return opa
        _build(go, version, bindir, say, tick_seconds)
    if not reports_version(opa, version):
        raise OpaInstallError(f"{opa} was built but does not report version {version}", code="opa_build_failed")
    return opa


def _build(go: str, version: str, bindir: Path, say: Callable[[str], None], tick_seconds: float) -> None:
    say(f"building OPA {version} from source with `go install {OPA_MODULE}@{version}`")
    say(f"into {bindir} (first time only; 2-5 minutes on an idle machine, much longer on a busy one)")
    env = {**os.environ, "GOBIN": str(bindir), "GOFLAGS": (os.environ.get("GOFLAGS", "") + " -trimpath").strip()}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv.
            [go, "install", f"{OPA_MODULE}@{version}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
    except OSError as exc:
        raise OpaInstallError(f"could not run {go}: {exc.strerror or exc}", code="opa_build_failed") from exc
    downloads = 0
    tail: deque[str] = deque(maxlen=40)

    def read() -> None:
        nonlocal downloads
        assert proc.stdout is not None  # noqa: S101 - stdout=PIPE above.
        for line in proc.stdout:
            if line.startswith("go: downloading "):
                downloads += 1
            else:
                tail.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while True:
        try:
            proc.wait(timeout=tick_seconds)
            break
        except subprocess.TimeoutExpired:
            phase = f"{downloads} modules downloaded" + (", compiling" if downloads else "")
            say(f"    ... {_minutes(time.monotonic() - started)} ({phase})")
    reader.join(timeout=5)
    if proc.returncode != 0:
        detail = "\n".join(tail) or "(no output)"
        raise OpaInstallError(
            f"go install {OPA_MODULE}@{version} failed (exit {proc.returncode}):\n{detail}", code="opa_build_failed"
        )
    say(f"built OPA {version} in {_minutes(time.monotonic() - started)}")


def main() -> int:
    """Script entry point: install when needed, print the path on stdout."""
    version = os.environ.get("OPA_VERSION") or OPA_VERSION
    try:
        opa = install(version)
    except OpaInstallError as exc:
        print(f"install-opa: {exc}", file=sys.stderr)
        return 1
    print(opa)
    return 0


if __name__ == "__main__":
    sys.exit(main())

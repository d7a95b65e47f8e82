"""A throwaway PostgreSQL cluster (initdb in a temporary directory), for tests and benchmarks.

Used by the ``pg_cluster`` fixture of ``tests/workflow/conftest.py`` and by
``bench/bench_store.py``, so that both start PostgreSQL the same way. The
cluster listens on a free loopback port with its unix socket in its own
directory and is stopped and deleted on exit. PostgreSQL refuses to run as
root, so as root it runs as the ``postgres`` OS user. It trades durability
for speed (``fsync=off``): it holds nothing worth keeping.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PgCluster", "PgStartError", "pg_bindir", "running_cluster"]


class PgStartError(RuntimeError):
    """PostgreSQL is installed but the cluster did not start (the message holds its log)."""


def pg_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    for pattern in ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/*/bin"):
        for d in sorted(glob.glob(pattern), reverse=True):
            if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
                return Path(d)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A running throwaway PostgreSQL cluster."""

    def __init__(self, port: int, socket_dir: Path) -> None:
        self.port = port
        self.socket_dir = socket_dir
        self.counter = itertools.count()

    def admin_url(self) -> str:
        """A libpq URL of the ``postgres`` database as the superuser."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """Create a database and return its SQLAlchemy URL: empty, or a copy of the database ``template``."""
        import psycopg

        name = name or f"t{os.getpid()}_{next(self.counter)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


def _stop(bindir: Path, prefix: list[str], data: Path) -> None:
    """Stop the cluster in ``data`` at once, if it runs (``pg_ctl stop -m immediate``; a failure is ignored)."""
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],  # noqa: S603
                   capture_output=True, timeout=60, check=False)


def _sweep_orphans(bindir: Path, prefix: list[str]) -> None:
    """Stop and delete the clusters of test processes that died without doing it (SIGKILL, a lost worker).

    Only clusters whose ``owner.pid`` names a process that no longer exists
    are touched; a concurrent run's clusters are left alone.
    """
    for owner in glob.glob(os.path.join(tempfile.gettempdir(), "hitlgate-pg-*", "owner.pid")):
        base = Path(owner).parent
        try:
            pid = int(Path(owner).read_text(encoding="ascii").strip())
            os.kill(pid, 0)
            continue  # Its owner is alive.
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue  # Unreadable, or owned by a process we may not signal: not ours to judge.
        _stop(bindir, prefix, base / "data")
        shutil.rmtree(base, ignore_errors=True)


def _watchdog(bindir: Path, prefix: list[str], base: Path, data: Path) -> None:
    """A detached process that stops the cluster and deletes its files once this process has ended.

    The ``finally`` below cannot run when this process is killed outright:
    SIGKILL, or an xdist controller's SIGTERM arriving while a worker waits
    on ``pg_ctl start`` (execnet ends the worker there). pg_ctl daemonises
    the server, so it outlived the worker; only the next run's
    :func:`_sweep_orphans`, in the same temporary directory, stopped it.
    After a normal stop this finds nothing left to do.
    """
    stop = shlex.join([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    script = f"tail --pid={os.getpid()} -f /dev/null; {stop} >/dev/null 2>&1; rm -rf -- {shlex.quote(str(base))}"
    subprocess.Popen(  # noqa: S603 - fixed argv, the paths quoted.
        ["sh", "-c", script],  # noqa: S607
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


@contextmanager
def running_cluster(bindir: Path, *, settings: Sequence[str] = ()) -> Iterator[PgCluster]:
    """Start a cluster with the binaries in ``bindir``; stop and delete it on exit.

    ``settings`` are extra ``name=value`` server settings (e.g. ``shared_buffers=256MB``).
    Raises :class:`PgStartError` with the server's log when it does not start.
    """
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
    _sweep_orphans(bindir, prefix)
    base = Path(tempfile.mkdtemp(prefix="hitlgate-pg-"))
    data = base / "data"
    # Who owns this cluster: a later start stops and deletes it if this process died without doing so.
    (base / "owner.pid").write_text(str(os.getpid()), encoding="ascii")
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)  # noqa: S603

    _watchdog(bindir, prefix, base, data)
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        extra = "".join(f" -c {s}" for s in settings)
        opts = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=100{extra}"
        )
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "-t", "60", "start")
    except subprocess.CalledProcessError as exc:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise PgStartError(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')}\n{log}") from exc
    except BaseException:
        # Interrupted while starting (Ctrl-C, or SIGTERM as a KeyboardInterrupt): nothing may stay behind.
        _stop(bindir, prefix, data)
        shutil.rmtree(base, ignore_errors=True)
        raise
    try:
        yield PgCluster(port=port, socket_dir=base)
    finally:
        _stop(bindir, prefix, data)
        # The cluster's files (a few GB of per-test databases by the end of a
        # full run) are deleted by a detached ``rm``: waiting for it made the
        # last test of every worker take 15-40 s. It is renamed first, so
        # nothing can reuse the path while it goes.
        doomed = base.with_name(base.name + ".deleting")
        try:
            base.rename(doomed)
        except OSError:
            shutil.rmtree(base, ignore_errors=True)
        else:
            subprocess.Popen(  # noqa: S603 - fixed argv
                ["rm", "-rf", "--", str(doomed)],  # noqa: S607
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

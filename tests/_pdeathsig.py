"""The OPA and ``hitlgate serve`` processes a test worker starts die with it, even when it is SIGKILLed.

A worker's fixtures stop those servers at teardown, and SIGTERM becomes a
KeyboardInterrupt that tears them down (tests/conftest.py). SIGKILL runs no
teardown: the servers were left running, holding ports and CPU, until
someone killed them by hand. Linux sends a child the signal set with
``prctl(PR_SET_PDEATHSIG)`` when the thread that started it exits, so each
is started with ``preexec_fn=die_with_parent()`` (from the main thread,
where pytest-xdist runs fixtures). OPA gets SIGKILL: the fault tests pause
it with SIGSTOP, and a stopped process keeps a SIGTERM pending.

Not covered here: PostgreSQL clusters (``pg_ctl`` detaches the server from
the worker), which ``tests/_pgcluster.py`` sweeps at the next start when
their owner is gone, and browsers, which Playwright starts.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1

# Loaded here, in the parent: loading a library in the child between fork and exec could wait
# forever on a lock another thread of the parent held at the fork.
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent ``sig`` when this process dies; None where Linux's prctl is missing."""
    if _libc is None:
        return None
    libc = _libc
    parent = os.getpid()

    def preexec() -> None:
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # The parent died before the prctl: nobody will send the signal.
            os.kill(os.getpid(), sig)

    return preexec

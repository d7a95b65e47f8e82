"""Refusing to load regopy under an address-space limit it cannot live with.

regopy's allocator (snmalloc) reserves 256 GiB of virtual address space
when the library loads. Under a ``ulimit -v`` (``RLIMIT_AS``) below that it
prints "Failed to initialise snmalloc." and calls ``abort()``: exit 134,
no error message hitlgate can catch, no JSON under ``--json``. A reservation
is only address space, not memory, so the limit that matters is the
process's virtual size now plus the reservation.

:func:`require_address_space` checks this before ``import regopy`` and
raises :class:`~hitlgate.errors.BackendUnavailable` with the code
``address_space_limit`` naming the limit and what is needed. Measured with
regopy 1.5.2 by bisecting ``ulimit -v`` on ``hitlgate decide``: it aborts at
268,561,107 KiB and works at 268,707,567 KiB, i.e. 256 GiB plus the
~260 MiB the interpreter had mapped by then.
"""

from __future__ import annotations

import os
import resource

from hitlgate.errors import BackendUnavailable

GIB = 1024**3

#: What snmalloc reserves when regopy loads.
SNMALLOC_RESERVATION = 256 * GIB

#: Room for regopy's own code and data and the threads it starts, on top of
#: the reservation (measured: well under this).
MARGIN = 128 * 1024**2

#: Used when the process's current virtual size cannot be read (no /proc).
FALLBACK_CURRENT = 512 * 1024**2


def _current_virtual_size() -> int:
    """This process's virtual size in bytes (``/proc/self/statm``), or a generous guess without /proc."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return FALLBACK_CURRENT
    return pages * os.sysconf("SC_PAGE_SIZE")


def needed_address_space() -> int:
    """Bytes of ``RLIMIT_AS`` loading regopy needs from here: what is mapped now, plus reservation and margin."""
    return _current_virtual_size() + SNMALLOC_RESERVATION + MARGIN


def require_address_space() -> None:
    """Raise :class:`BackendUnavailable` (``address_space_limit``) if regopy would abort on load.

    Call before the first ``import regopy``; without a soft ``RLIMIT_AS``
    this does nothing.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return
    needed = needed_address_space()
    if soft < needed:
        raise BackendUnavailable(
            f"the embedded backend (regopy) needs about {_kib(needed)} KiB of virtual address space "
            f"(its allocator reserves 256 GiB up front; this is address space, not memory), but the "
            f"address-space limit (ulimit -v, RLIMIT_AS) is {_kib(soft)} KiB; loading it would abort the "
            "process. Raise or remove the limit (ulimit -v unlimited), or use the OPA backend "
            "(backend: {kind: opa, url: ...})",
            code="address_space_limit",
        )


def _kib(n: int) -> str:
    return f"{n // 1024:,}"

"""Cyclic garbage collector settings for a long-running ``hitlgate serve`` process.

CPython collects its youngest generation every 700 net allocations of
tracked objects, and a full collection walks every tracked object that is
not frozen. A server's requests allocate thousands of short-lived objects
each (a listing page of 100 requests: about 1,500), so with the defaults a
page waits for several collections, and the walks over what stays alive
(the parsed-decision cache, the app's routes and models) show as pauses of
15 to 30 ms at a listing's p99 on a small VM (docs/benchmarks.md). Reference
counting still frees everything acyclic at once; these settings only make
the cycle search rarer, and keep what was loaded at start out of it.
"""

from __future__ import annotations

import gc

__all__ = ["GEN0_THRESHOLD", "settle_for_serving"]

#: Net allocations of tracked objects between collections of the youngest generation (CPython: 700).
GEN0_THRESHOLD = 10_000


def settle_for_serving() -> None:
    """Collect once, freeze what is alive (the engine just built), and raise the youngest generation's threshold.

    Called by ``hitlgate serve`` (each worker process) after the engine is
    built and before it answers. Frozen objects are never walked again;
    they are still freed by reference counting when replaced (an inventory
    or policy reload). The few frozen objects that sit in reference cycles
    (about 30 after the start measured) are then never freed: a bounded,
    one-time cost per reload of what was loaded at start.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, older, oldest)

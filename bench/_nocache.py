"""Benchmarks measure evaluation, not the exact decision cache.

The embedded backend answers an input it evaluated before from its exact
decision cache (``hitlgate.engine.decide._decision_cache``). The benchmarks cycle
through a fixed set of proposals, so with the cache on every round after
the first would measure cache hits. Every decider a goal is measured with
goes through :func:`uncached`; the cached cost is measured on its own, in
a mode named for it.
"""

from __future__ import annotations

from typing import Any


def uncached(decider: Any) -> Any:
    """``decider`` with its backend's decision cache (if it has one) turned off; returns it."""
    cache = getattr(getattr(decider, "backend", decider), "decision_cache", None)
    if cache is not None:
        cache.resize(0)
    return decider

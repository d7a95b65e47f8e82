"""One rule for missing real components: skip on a developer's machine, fail in CI.

The integration tests run against the real thing (OPA, PostgreSQL, a
browser). A developer without one of them installed may run the rest of
the suite, and sees the skip with a hint; in CI (the ``CI`` environment
variable is set) a missing component fails the run loudly, naming what is
missing, because a green run that skipped the OPA or PostgreSQL tests has
not tested what it claims.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether this is a CI run (the ``CI`` environment variable is set to anything but empty)."""
    return bool(os.environ.get("CI"))


def missing(component: str, hint: str) -> NoReturn:
    """Report that ``component`` is missing: fail under CI, skip otherwise. ``hint`` says how to install it."""
    message = f"{component} is missing: {hint}"
    if in_ci():
        pytest.fail(f"CI requires every real component. {message}", pytrace=False)
    pytest.skip(message)


def require_root(why: str) -> None:
    """Fail under CI, skip elsewhere, unless this process is root; ``why`` says what the test does as root."""
    if os.geteuid() != 0:
        missing("root", f"this test needs root {why}")

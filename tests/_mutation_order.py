"""pytest plugin for mutation runs only (scripts/mutation): a mutant's likeliest killers run first.

mutmut runs, for each mutant, the tests that executed the mutated function,
with ``-x``: the first failure ends the run and kills the mutant. It passes
them as a set, so they ran in an arbitrary order, often a multi-second
engine test before the millisecond unit test that fails at once. This
plugin orders them:

1. the tests that already killed another mutant of the same function in
   this working copy (most kills first). Each mutant's run appends the test
   that killed it to ``mutation-killers.tsv`` in the working directory; a
   check's mutants tend to be killed by the few tests written against that
   check, which an ordering by duration alone reached last when they are
   slow (a message test behind a hundred faster engine tests);
2. then the rest, fastest first, by the duration mutmut recorded for each
   when it collected its stats (``mutmut-stats.json``).

Before either file exists (the stats run itself) it changes nothing. The
order never changes a verdict: a killed mutant fails some test whichever
runs first, and a surviving mutant still runs every one of its tests. Nor
may the plugin itself: a crash in a hook would end pytest with exit 3
before any test ran, which mutmut counts as a kill. So a file it cannot
read or parse (garbage, a directory, a huge or endless file) only means no
reordering, and a kill it cannot record is not recorded.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
from pathlib import Path

import pytest

KILLERS = Path("mutation-killers.tsv")
#: The most of the killers file read (about 10,000 lines; a full run writes one per killed mutant).
MAX_KILLERS_BYTES = 4 << 20
_MUTANT = re.compile(r"^(?P<function>.+)__mutmut_\d+$")

STATS = Path("mutmut-stats.json")
#: The durations read, and the (mtime, size) of the stats file they were read from.
_durations: tuple[tuple[int, int], dict[str, float]] | None = None


def _recorded_durations() -> dict[str, float]:
    """The stats' duration per test id, read again only when the stats file changed.

    mutmut forks each mutant's run from its main process, which loaded this
    plugin for its own stats run: durations cached then are the previous
    run's, in which the tests added since have none and so ran last, after
    every other test of the function (a mutant one of them kills took
    minutes instead of a second). One stat() per mutant's run finds that.
    """
    global _durations
    try:
        st = STATS.stat()
        version = (st.st_mtime_ns, st.st_size)
        if _durations is None or _durations[0] != version:
            doc = json.loads(STATS.read_text(encoding="utf-8"))
            _durations = (version, {str(k): float(v) for k, v in doc.get("duration_by_test", {}).items()})
    except (OSError, ValueError, TypeError, AttributeError):
        return {}
    return _durations[1]


def _function_under_test() -> str | None:
    """The mutated function of this run (``MUTANT_UNDER_TEST`` without its number); None outside a mutant's run."""
    m = _MUTANT.match(os.environ.get("MUTANT_UNDER_TEST", ""))
    return m.group("function") if m else None


def _kills(function: str) -> collections.Counter[str]:
    """How many of ``function``'s mutants each test killed so far (read fresh: other children append)."""
    kills: collections.Counter[str] = collections.Counter()
    try:
        with open(KILLERS, "rb") as fh:
            text = fh.read(MAX_KILLERS_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return kills
    for line in text.splitlines():
        name, sep, nodeid = line.partition("\t")
        if sep and name == function:
            kills[nodeid] += 1
    return kills


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Known killers of this function first (most kills first), then the rest fastest first."""
    durations = _recorded_durations()
    function = _function_under_test()
    kills = _kills(function) if function else collections.Counter()
    if durations or kills:
        items.sort(key=lambda item: (-kills[item.nodeid], durations.get(item.nodeid, math.inf)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record the test that killed this run's mutant (one short line, appended in one write)."""
    function = _function_under_test()
    if function and report.failed and "\t" not in report.nodeid and "\n" not in report.nodeid:
        try:
            fd = os.open(KILLERS, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o644)
        except OSError:
            return  # Only the next mutant's order is lost.
        try:
            os.write(fd, f"{function}\t{report.nodeid}\n".encode())
        except OSError:
            pass  # A full disk, a read-only or special file: the same.
        finally:
            os.close(fd)

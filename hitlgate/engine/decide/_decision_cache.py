"""An exact cache of policy outputs: the same input under the same revisions gives the same output.

A decision is a function of three things: the Rego modules (their
revision), the inventory (its revision) and the input the engine
evaluates - the validated proposal *and* the target's neighbourhood, both
in full. The key is all three: the canonical JSON of the whole evaluated
input (sorted keys) and both revisions, so a hit can only return the
output the policy gave for exactly that input under exactly those modules
and that inventory. A changed module, a changed inventory record, a
different parameter, incident or requester: a different key.

What is stored is the output's JSON text, parsed again on every hit, so no
caller can change a cached output through the object it was given; the
decision built from it is validated as every decision is.

When it is off:

* the modules call anything whose result is not a function of the input
  (``time.now_ns``, ``rand.intn``, ``http.send``, ``uuid.rfc4122``,
  ``opa.runtime``, ``net.*``, ``io.jwt.decode_verify``) or write output
  (``print``, ``trace``), found by a conservative scan of their text
  (:func:`hitlgate.engine.decide._regoscan.nondeterministic_calls`);
* the input has no canonical JSON form (an integer beyond 64 bits);
* its size is 0.

Bounded: at most ``size`` entries, least recently used evicted first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

#: Entries kept by default (an entry is about one to two kilobytes: key and output).
DEFAULT_SIZE = 4096


class DecisionCache:
    """Policy outputs by (modules revision, inventory revision, canonical evaluated input); thread-safe, LRU."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        """A cache of at most ``size`` outputs (0: off)."""
        if size < 0:
            raise ValueError(f"decision cache size must be at least 0, got {size}")
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        #: Answers served from the cache, and evaluations stored in it, since start.
        self.hits = 0
        self.misses = 0

    def resize(self, size: int) -> None:
        """Keep at most ``size`` entries from now on (0 turns the cache off and empties it)."""
        if size < 0:
            raise ValueError(f"decision cache size must be at least 0, got {size}")
        with self._lock:
            self.size = size
            while len(self._entries) > size:
                self._entries.popitem(last=False)

    @staticmethod
    def key(modules_revision: str, inventory_revision: str, document: Mapping[str, Any]) -> bytes | None:
        """The exact key of one evaluation, or None when the input has no canonical JSON form."""
        try:
            body = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        return b"\0".join((modules_revision.encode(), inventory_revision.encode(), body))

    def get(self, key: bytes) -> tuple[bool, Any]:
        """``(True, output)`` for a cached evaluation, else ``(False, None)``."""
        with self._lock:
            text = self._entries.get(key)
            if text is None:
                return False, None
            self._entries.move_to_end(key)
            self.hits += 1
        return True, orjson.loads(text)

    def put(self, key: bytes, output: Any) -> None:
        """Remember the output of the evaluation ``key`` names."""
        try:
            text = orjson.dumps(output)
        except TypeError:
            return
        with self._lock:
            if self.size == 0:
                return
            self.misses += 1
            self._entries[key] = text
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        """How many outputs are cached now."""
        return len(self._entries)

"""Embedded Rego evaluation with regopy (rego-cpp), in process.

The Rego modules are compiled once into a regopy bundle with the
entrypoint ``hitlgate/decision``; each query only sets the input and runs
the compiled plan. The inventory is *not* compiled in: each query's input
carries the target's neighbourhood under ``inventory``, looked up by key in
a :class:`~hitlgate.engine.decide.facts.FactIndex` (see
:func:`hitlgate.engine.decide.backends.with_facts`). So the modules are recompiled
only when a module changes; an inventory change rebuilds the index alone.

regopy's interpreter is not thread-safe, so every thread keeps its own
interpreter and compiled bundle (one per modules revision): the modules
only, a few hundred kilobytes, never a copy of the inventory.

stdout belongs to the caller (``decide --json`` prints one JSON document
there), but rego-cpp writes compile errors ("Errors: ...") and the output
of Rego's ``print``/``trace`` to the process's file descriptor 1, below
Python. So compiling, and evaluating a pack whose source calls ``print``
or ``trace``, runs with fd 1 pointed at a temporary file
(:func:`_native_stdout_captured`); the capture becomes the compile error's
message or a log line on stderr. The redirect is process-wide, so it holds
a lock: compiles are rare, and packs without ``print``/``trace`` (the
norm in production) evaluate without it, in parallel.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hitlgate.engine.decide._addrspace import require_address_space
from hitlgate.engine.decide._decision_cache import DEFAULT_SIZE as DEFAULT_CACHE_SIZE
from hitlgate.engine.decide._decision_cache import DecisionCache
from hitlgate.engine.decide._locate import display_path
from hitlgate.engine.decide._rego_errors import RegoCompileError, RegoProblem, from_regopy
from hitlgate.engine.decide._regoscan import inventory_sections_read, nondeterministic_calls
from hitlgate.engine.decide.backends import with_facts
from hitlgate.engine.decide.facts import FactIndex, FactSource, shared_file_facts
from hitlgate.engine.decide.policy import (
    DECISION_PATH,
    PolicyModules,
    PolicyPack,
    Reloading,
    as_policy_error,
    combine_revisions,
)
from hitlgate.engine.limits import DEFAULT_LIMITS, Limits
from hitlgate.errors import BackendUnavailable, HitlgateError, PolicyError, ValidationError

# regopy aborts the whole process on load under a too-small ulimit -v:
# refuse with an error instead, before it is imported (see _addrspace).
require_address_space()

import regopy  # noqa: E402 - must follow the address-space check.

log = logging.getLogger(__name__)
#: What the policy itself prints (Rego print/trace): its own logger, never
#: filtered as a duplicate of an engine error, so it always reaches stderr.
policy_output_log = logging.getLogger("hitlgate.policy")

#: Serialises every redirect of fd 1: it is one per process.
_STDOUT_LOCK = threading.Lock()
#: At most this much native output is kept per capture.
_MAX_CAPTURE = 64 * 1024
#: Rego builtins that write to stdout from inside evaluation.
_WRITES_STDOUT = re.compile(r"\b(?:print|trace)\s*\(")

try:
    _fflush: Any = ctypes.CDLL(None).fflush
    _fflush.argtypes = [ctypes.c_void_p]
except (OSError, AttributeError):  # pragma: no cover - no C library to flush (not POSIX).
    _fflush = None


def _flush_native() -> None:
    # rego-cpp writes through C stdio, whose buffer must reach fd 1 while
    # fd 1 is still the capture file, not after it is restored.
    if _fflush is not None:
        _fflush(None)


@contextmanager
def _native_stdout_captured() -> Iterator[list[str]]:
    """Point fd 1 at a temporary file while native code runs; the list receives what it wrote.

    Thread-safe (one redirect at a time); if fd 1 cannot be redirected
    (closed, no temp dir), the body runs without a capture.
    """
    captured: list[str] = []
    with _STDOUT_LOCK:
        try:
            sys.stdout.flush()
        except (OSError, ValueError, AttributeError):
            pass
        _flush_native()
        try:
            saved = os.dup(1)
            sink = tempfile.TemporaryFile()
        except OSError:
            yield captured
            return
        try:
            os.dup2(sink.fileno(), 1)
            try:
                yield captured
            finally:
                _flush_native()
                os.dup2(saved, 1)
            sink.seek(0)
            captured.append(sink.read(_MAX_CAPTURE).decode("utf-8", "replace"))
        finally:
            os.close(saved)
            sink.close()


_COMMENT_OR_BLANK = re.compile(r"\s*(#.*)?")


def _package_problem(source: str) -> int:
    """The line of a module's first statement when that is not ``package ...`` (0 when it is)."""
    for number, line in enumerate(source.splitlines(), 1):
        if _COMMENT_OR_BLANK.fullmatch(line):
            continue
        return 0 if re.match(r"\s*package\b", line) else number
    return 1  # No statement at all: not a module either.


def compile_pack(pack: PolicyModules | PolicyPack) -> tuple[regopy.Interpreter, regopy.Bundle]:
    """A fresh interpreter with the modules of ``pack`` compiled into a bundle for ``hitlgate/decision``.

    No data is added: the facts arrive in each query's input. rego-cpp's
    error report goes to fd 1; it is captured into the
    :class:`PolicyError`'s message instead, so stdout stays the caller's.
    """
    missing = [RegoProblem(display_path(pack.policy_dir / name), line, 1,
                           "a Rego module must begin with a package declaration")
               for name, source in pack.modules if (line := _package_problem(source))]
    if missing:
        # rego-cpp (regopy 1.5) compiles a module without one, then crashes the process on the first query.
        raise RegoCompileError("regopy", missing)
    interpreter = regopy.Interpreter()
    with _native_stdout_captured() as native:
        try:
            for name, source in pack.modules:
                interpreter.add_module(name, source)
            bundle = interpreter.build(None, [DECISION_PATH])
        except regopy.RegoError as exc:
            error: regopy.RegoError | None = exc
        else:
            error = None
    report = "".join(native).strip()
    if report:
        # rego-cpp's own report of the same errors; the message below is built from the exception.
        log.debug("regopy wrote while compiling the policy: %s", _first_lines(report, 40))
    if error is not None:
        # Name each file as policy test does (relative to the working directory), not by its name in the pack.
        found = from_regopy(str(error), dict(pack.modules))
        problems = [p.with_file(display_path(pack.policy_dir / p.file)) for p in found]
        raise RegoCompileError("regopy", problems, str(error)) from error
    if not bundle.ok():
        raise PolicyError("policy does not compile: regopy could not build the bundle")
    return interpreter, bundle


class _Compiled:
    """One thread's interpreter with the modules compiled into a bundle."""

    def __init__(self, modules: PolicyModules) -> None:
        self.revision = modules.revision
        self.interpreter, self.bundle = compile_pack(modules)
        self.writes_stdout = any(_WRITES_STDOUT.search(source) for _, source in modules.modules)
        #: The inventory sections these modules may read (None: any); the rest is left out of the input.
        self.sections = inventory_sections_read(source for _, source in modules.modules)
        #: Whether an output may be reused for the same input: none of the modules calls a
        #: builtin whose result is not a function of the input (the clock, randomness, the network).
        self.cacheable = not self.writes_stdout and not nondeterministic_calls(source for _, source in modules.modules)

    def query(self, input_document: Mapping[str, Any]) -> Any:
        if not self.writes_stdout:
            return self._query(input_document)
        native: list[str] = []
        try:
            with _native_stdout_captured() as native:
                return self._query(input_document)
        finally:
            # Rego print/trace output goes to stderr through the log, as OPA sends it to stderr.
            text = "".join(native).strip()
            if text:
                policy_output_log.warning("policy output (print/trace): %s", _first_lines(text, 20))

    def _query(self, input_document: Mapping[str, Any]) -> Any:
        return evaluate_input(self.interpreter, self.bundle, input_document)


#: rego-cpp's C library as regopy loaded it, for the per-query calls made directly (see evaluate_input).
_LIB: Any = regopy.rego_shared.rego
#: The entrypoint, encoded once rather than on every query.
_ENTRYPOINT = DECISION_PATH.encode("utf-8")
#: The range of the C API's integer input (int64); larger integers go through the JSON parser.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _new_input(value: Any) -> Any:
    """Build a rego-cpp input from a JSON-like value with one C call per node.

    regopy's own ``Input`` makes the same calls, but through a wrapper per
    call that copies every string into a fresh buffer and checks abstract
    types; calling the library directly with the encoded bytes halves the
    cost of the input. Exact JSON types take the fast branch; other
    mappings and sequences are accepted as regopy accepts them. An integer
    outside int64 raises ValueError, so the decision fails closed:
    regopy's ``Input`` silently wrapped it (2**70 became 0), and rego-cpp's
    JSON parser turns it into an inexact float, while OPA keeps it exact.
    """
    lib = _LIB
    text, integer, number, boolean = lib.regoInputString, lib.regoInputInt, lib.regoInputFloat, lib.regoInputBoolean
    item, obj, array = lib.regoInputObjectItem, lib.regoInputObject, lib.regoInputArray
    handle = lib.regoNewInput()

    def add(v: Any) -> int:
        # Each call returns rego-cpp's status code (0 is OK); they are OR-ed, so one failure anywhere shows.
        t = type(v)
        if t is str:
            code: int = text(handle, v.encode("utf-8"))
            return code
        if t is dict or (t is not list and isinstance(v, Mapping)):
            code = 0
            for key, child in v.items():
                if type(key) is not str:
                    raise ValueError(f"input object key {key!r} is not a string")
                code |= text(handle, key.encode("utf-8")) | add(child) | item(handle)
            return code | obj(handle, len(v))
        if t is list or t is tuple:
            code = 0
            for child in v:
                code |= add(child)
            return code | array(handle, len(v))
        if t is bool:
            code = boolean(handle, v)
            return code
        if t is int:
            if not _INT_MIN <= v <= _INT_MAX:
                raise ValueError(
                    "an integer in the input is beyond 64 bits, which the embedded engine cannot pass exactly"
                    " (the OPA backend can)"
                )
            code = integer(handle, v)
            return code
        if t is float:
            code = number(handle, v)
            return code
        if v is None:
            code = lib.regoInputNull(handle)
            return code
        raise ValueError(f"cannot pass a value of type {t.__name__} to the policy")

    try:
        if add(value) != 0:
            raise regopy.RegoError("unable to create the policy input")
    except BaseException:
        lib.regoFreeInput(handle)
        raise
    return handle


def _set_input(interpreter: regopy.Interpreter, document: Mapping[str, Any]) -> None:
    """Set the input of ``interpreter`` to ``document``, built node by node (see :func:`_new_input`)."""
    handle = _new_input(document)
    try:
        code = _LIB.regoSetInput(interpreter._impl, handle)
    finally:
        _LIB.regoFreeInput(handle)
    if code != 0:
        raise regopy.RegoError(regopy.rego_shared.rego_get_error(interpreter._impl), code)


def _output_text(output: Any) -> str:
    size = _LIB.regoOutputJSONSize(output)
    buffer = ctypes.create_string_buffer(size)
    if _LIB.regoOutputJSON(output, buffer, size) != 0:
        raise ValueError("rego-cpp could not write its output")
    return buffer.value.decode("utf-8")


def evaluate_input(interpreter: regopy.Interpreter, bundle: regopy.Bundle, document: Mapping[str, Any]) -> Any:
    """Set ``document`` as the input, query the bundle's decision entrypoint and return its value.

    The whole query: this is also the floor the benchmarks compare
    ``decide`` with. Returns None when the rule is undefined; raises
    :class:`PolicyError` for an evaluation error and
    :class:`BackendUnavailable` for an output that cannot be read.

    The output is fetched once as JSON (regopy's ``Output`` fetches it
    twice) and parsed refusing duplicate keys (see below).
    """
    try:
        _set_input(interpreter, document)
        output = _LIB.regoBundleQueryEntrypoint(interpreter._impl, bundle._impl, _ENTRYPOINT)
        if not output:
            raise regopy.RegoError(regopy.rego_shared.rego_get_error(interpreter._impl))
        try:
            ok = _LIB.regoOutputOk(output)
            text = _output_text(output)
        finally:
            _LIB.regoFreeOutput(output)
    except regopy.RegoError as exc:
        # An evaluation error (conflicting rule values, a failing built-in)
        # is a bug in the policy, as OPA's internal_error is: policy_broken.
        raise PolicyError(f"regopy evaluation error: {_first_lines(str(exc))}") from exc
    except (ValueError, TypeError) as exc:
        raise BackendUnavailable(f"regopy could not take the input or give a result: {exc}") from exc
    if not ok:
        raise PolicyError(f"regopy evaluation error: {_first_lines(text)}")
    if text == "undefined":
        return None
    try:
        # rego-cpp writes strings into its JSON output without escaping
        # them: a quote in a string the policy copied from the input (a
        # justification, a parameter) ends the string early, and the rest
        # can spell extra keys, a later duplicate of which would win in any
        # ordinary parser (replacing, say, the decision's quorum). A
        # duplicate key refuses the output (fail closed); a control
        # character or a stray quote already makes it unparseable.
        parsed = json.loads(text, object_pairs_hook=_unique_keys)
    except ValueError as exc:
        raise BackendUnavailable(f"regopy returned an unreadable result: {_first_lines(str(exc))}") from exc
    first = parsed[0] if isinstance(parsed, list) and parsed else parsed
    expressions = first.get("expressions") if isinstance(first, dict) else None
    if not expressions:
        return None
    return expressions[0]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the result names {key!r} twice (a string in it was not escaped: refused)")
        out[key] = value
    return out


def _first_lines(text: str, n: int = 8) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[:n])


class RegopyBackend:
    """The embedded default backend."""

    name = "embedded"

    def __init__(
        self,
        policy_dir: Path,
        data_paths: list[Path],
        *,
        watch: bool = True,
        limits: Limits = DEFAULT_LIMITS,
        facts: FactSource | None = None,
        decision_cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        """Compile the modules under ``policy_dir``; facts come from ``facts`` or the inventory files.

        ``decision_cache_size``: outputs kept for repeated inputs (0: none).
        """
        #: Exact outputs of inputs evaluated before (see :mod:`hitlgate.engine.decide._decision_cache`).
        self.decision_cache = DecisionCache(decision_cache_size)
        self._policy_dir = Path(policy_dir)
        self._data_paths = tuple(Path(p) for p in data_paths)
        self._local = threading.local()
        #: Where each decision's facts come from; shared with the approver registry.
        self.facts: FactSource = facts if facts is not None else shared_file_facts(self._data_paths, limits=limits)
        self._modules: Reloading[PolicyModules] = Reloading(
            self._load_modules, lambda: PolicyModules.watched_paths(self._policy_dir),
            what="policy pack", watch=watch,
        )
        # Load the inventory now, so a broken one is reported at start, not at the first decision.
        with contextlib.suppress(HitlgateError):
            self.facts.current()

    def _load_modules(self) -> PolicyModules:
        modules = PolicyModules.load(self._policy_dir)
        # Compile up front so errors surface at load; this thread keeps it.
        self._local.compiled = _Compiled(modules)
        return modules

    @property
    def modules(self) -> PolicyModules:
        """The current modules; raises the load or compile error if they are broken."""
        return self._modules.get()

    @property
    def pack(self) -> PolicyPack:
        """The pack on disk now, modules and inventory (loaded afresh: for tools, not for deciding)."""
        modules = self.modules
        return PolicyPack.load_for_backend(modules.policy_dir, self._data_paths)

    @property
    def expected_revision(self) -> str:
        """The policy revision decisions get now: the modules' and the inventory's."""
        return combine_revisions(self.modules.revision, _index(self.facts).revision)

    def _compiled(self) -> _Compiled:
        modules = self.modules
        compiled: _Compiled | None = getattr(self._local, "compiled", None)
        if compiled is None or compiled.revision != modules.revision:
            compiled = _Compiled(modules)
            self._local.compiled = compiled
        return compiled

    def evaluation_input(self, input_document: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """The input evaluated for ``input_document`` (with the facts the policy may read), inventory revision."""
        return with_facts(input_document, _index(self.facts), self._compiled().sections)

    def evaluate(self, input_document: Mapping[str, Any]) -> tuple[Any, str]:
        """Evaluate ``data.hitlgate.decision`` for one input, with the target's facts added.

        An input evaluated before under the same modules and inventory
        revisions is answered from :attr:`decision_cache` (exact; see
        :mod:`hitlgate.engine.decide._decision_cache`), unless the modules use a
        non-deterministic builtin.
        """
        compiled = self._compiled()
        document, inventory_revision = with_facts(input_document, _index(self.facts), compiled.sections)
        revision = combine_revisions(compiled.revision, inventory_revision)
        cache = self.decision_cache
        key = cache.key(compiled.revision, inventory_revision, document) if compiled.cacheable and cache.size else None
        if key is not None:
            hit, output = cache.get(key)
            if hit:
                return output, revision
        output = compiled.query(document)
        if key is not None:
            cache.put(key, output)
        return output, revision

    def close(self) -> None:
        """Drop this thread's interpreter."""
        self._local = threading.local()


def _index(facts: FactSource) -> FactIndex:
    """The current index; a broken inventory is a broken pack (policy_broken, exit 5)."""
    try:
        return facts.current()
    except ValidationError as exc:
        raise as_policy_error(exc) from exc

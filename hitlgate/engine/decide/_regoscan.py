"""Conservative reading of Rego module text: which facts a pack may read, which builtins it calls.

Two questions the engine asks of the modules it evaluates, answered from
their text without a Rego parser, and always on the safe side (when in
doubt, the answer is "everything" and "yes"):

* :func:`inventory_sections_read`: the sections of ``input.inventory``
  (identities, workloads, partners, teams, approvers, protected) that a rule
  could possibly read. A section is read when its name occurs anywhere in
  the code or in a string literal. If any module could reach the inventory
  (or the whole input, or the whole of ``data``) without naming a field -
  ``input.inventory[k]``, ``walk(input, ...)``, ``x := input.inventory``,
  ``json.marshal(input)``, ``import input as i``, ``data.hitlgate[k]`` -
  the answer is None: every section. The one alias allowed is the bundled
  pack's own ``inventory := input.inventory``, after which ``inventory`` is
  held to the same rule.
* :func:`nondeterministic_calls`: calls whose result can differ between
  two evaluations of the same input (``time.*``, ``rand.*``, ``http.send``,
  ``uuid.*``, ``opa.runtime``, ``net.*``, ``io.jwt.decode_verify`` which
  reads the clock, and ``print``/``trace``, whose output is a side effect).
  A decision may only be reused when there are none.
* :func:`target_tests`: the tests on the target id (``input.action.target``
  or a name bound to it) that trying string literals as target ids cannot
  exercise: a regex, a glob, ``sprintf``, ``substring``, indexing, a
  ``startswith``/``endswith``/``contains`` against anything but a literal,
  and the like. ``concat`` (reason text) and lookups by the id are not
  tests of its spelling and are left alone.

Comments are removed first (so a word in a comment neither counts as a
read nor as dynamic access); string literals are kept aside, because a
name inside a string can still be used as a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: The sections of the inventory a neighbourhood holds.
INVENTORY_SECTIONS = ("identities", "workloads", "partners", "teams", "approvers", "protected")

#: A name not followed by ``.field``: the whole value is used (bound, iterated, indexed by a variable, passed on).
_WHOLE = r"(?!\s*\.\s*[A-Za-z_])"
_DYNAMIC = (
    re.compile(r"\binput\b" + _WHOLE),
    re.compile(r"\binventory\b" + _WHOLE),
    re.compile(r"(?<![.\w])data\b" + _WHOLE),
    re.compile(r"(?<![.\w])data\s*\.\s*hitlgate\b" + _WHOLE),
)
#: The bundled pack's alias; ``inventory`` is then held to the rule above on its own.
_ALIAS = re.compile(r"^[ \t]*inventory[ \t]*:=[ \t]*input[ \t]*\.[ \t]*inventory[ \t]*$", re.MULTILINE)

_NONDETERMINISTIC = re.compile(
    r"(?<![\w.])(?:time\s*\.\s*\w+|rand\s*\.\s*\w+|http\s*\.\s*send|uuid\s*\.\s*\w+|opa\s*\.\s*runtime"
    r"|net\s*\.\s*\w+|io\s*\.\s*jwt\s*\.\s*decode_verify|print|trace)\s*\("
)


@dataclass(frozen=True)
class Scanned:
    """One module's code with comments removed and string literals replaced by ``""``, and those literals."""

    code: str
    strings: tuple[str, ...]


def scan(source: str) -> Scanned:
    """Split Rego source into code (no comments, strings emptied) and the string literals' raw text."""
    code: list[str] = []
    strings: list[str] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c == "#":
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        if c == '"' or c == "`":
            j = i + 1
            while j < n and source[j] != c:
                if c == '"' and source[j] == "\\":
                    j += 1
                elif c == '"' and source[j] == "\n":
                    break  # An unterminated string: rego would refuse it; stop it at the line's end.
                j += 1
            strings.append(source[i + 1 : j])
            code.append('""')
            i = j + 1
            continue
        code.append(c)
        i += 1
    return Scanned("".join(code), tuple(strings))


def inventory_sections_read(sources: Iterable[str]) -> frozenset[str] | None:
    """The inventory sections the modules may read, or None when they may read any (see module docstring)."""
    scanned = [scan(src) for src in sources]
    for s in scanned:
        code = _ALIAS.sub("", s.code)
        if any(p.search(code) for p in _DYNAMIC):
            return None
    read = set()
    for section in INVENTORY_SECTIONS:
        word = re.compile(rf"\b{section}\b")
        if any(word.search(s.code) or any(section in lit for lit in s.strings) for s in scanned):
            read.add(section)
    return frozenset(read)


def nondeterministic_calls(sources: Iterable[str]) -> list[str]:
    """The calls in the modules whose result is not a function of the input alone (empty: deterministic)."""
    found: list[str] = []
    for src in sources:
        for m in _NONDETERMINISTIC.finditer(scan(src).code):
            name = re.sub(r"\s+", "", m.group(0))[:-1]
            if name not in found:
                found.append(name)
    return found


#: Nondeterministic calls that cannot change a decision: their output is a side effect only.
SIDE_EFFECT_CALLS = ("print", "trace")

#: The target id: ``input.action.target`` (not a field below it).
_TARGET = r"input\s*\.\s*action\s*\.\s*target"
#: ``name := <expr>`` (or ``=``) alone on a line: a name bound to the whole of ``expr``.
_BIND = r"^[ \t]*(?:some[ \t]+)?([A-Za-z_]\w*)[ \t]*:?=[ \t]*(?:{expr})[ \t]*$"
#: Builtins that inspect a string's spelling; applied to the target id, each is a test the literal sweep may miss.
_STRING_TESTS = re.compile(
    r"(?<![\w.])(regex\s*\.\s*\w+|glob\s*\.\s*\w+|strings\s*\.\s*\w+|sprintf|substring|indexof_n|indexof|split"
    r"|lower|upper|trim\w*|replace|count|startswith|endswith|contains)\s*\("
)


def _args(code: str, start: int) -> list[str]:
    """The top-level arguments of the call whose ``(`` is at ``start`` (to the matching ``)`` or the end)."""
    depth, args, begin = 0, [], start + 1
    for i in range(start, len(code)):
        c = code[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append(code[begin:i])
                return [a.strip() for a in args]
        elif c == "," and depth == 1:
            args.append(code[begin:i])
            begin = i + 1
    args.append(code[begin:])
    return [a.strip() for a in args]


#: Rounds of following names bound to the target id (``a := target_id``, ``b := a`` ...): each round adds the
#: names bound to the last ones. Chains longer than this are named as a test the sweep cannot exercise (so a
#: pack cannot make the scan slow with thousands of them).
MAX_ALIAS_ROUNDS = 32


def _target_refs(code: str) -> re.Pattern[str] | None:
    """A pattern for the target id in ``code``: ``input.action.target`` and every name bound to it (or its action).

    None when the names bound to it go more than :data:`MAX_ALIAS_ROUNDS` deep.
    """
    actions = [r"input\s*\.\s*action"]
    targets = [_TARGET]
    for _ in range(MAX_ALIAS_ROUNDS):
        action_alt = "|".join(actions)
        target_alt = "|".join([*targets, rf"(?<![\w.])(?:{action_alt})\s*\.\s*target"])
        new_actions = {m.group(1) for m in re.finditer(_BIND.format(expr=rf"(?<![\w.])(?:{action_alt})\b(?!\s*[.\[])"),
                                                       code, re.MULTILINE)}
        new_targets = {m.group(1) for m in re.finditer(_BIND.format(expr=rf"(?:{target_alt})\b(?!\s*[.\[])"), code,
                                                       re.MULTILINE)}
        grown = ([a for a in sorted(new_actions) if rf"\b{a}\b" not in actions]
                 + [t for t in sorted(new_targets) if rf"\b{t}\b" not in targets])
        if not grown:
            return re.compile(rf"(?<![\w.])(?:{target_alt}|" + "|".join(rf"\b{t}\b" for t in targets) + r")\b")
        actions += [rf"\b{a}\b" for a in sorted(new_actions) if rf"\b{a}\b" not in actions]
        targets += [rf"\b{t}\b" for t in sorted(new_targets) if rf"\b{t}\b" not in targets]
    return None


#: What the target id may be compared with and still be exercised by the sweep: a string literal (emptied by
#: :func:`scan`) or a path into the inventory (whose ids the sweep knows are not unknown targets).
_SWEPT_OPERAND = re.compile(r'""|(?:input\s*\.\s*)?inventory(?:\s*\.\s*\w+|\s*\[[^\[\]]*\])*')
#: Where an operand of a comparison ends: a newline, ``;``, ``,``, ``if`` or a closing bracket at its depth.
_OPERAND_END = re.compile(r"[\n;,]|\bif\b")


def _operand_after(code: str, start: int) -> str:
    depth = 0
    for i in range(start, len(code)):
        c = code[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                return code[start:i].strip()
            depth -= 1
        elif depth == 0 and _OPERAND_END.match(code, i):
            return code[start:i].strip()
    return code[start:].strip()


def _operand_before(code: str, end: int) -> str:
    depth = 0
    for i in range(end - 1, -1, -1):
        c = code[i]
        if c in ")]}":
            depth += 1
        elif c in "([{":
            if depth == 0:
                return code[i + 1:end].strip()
            depth -= 1
        elif depth == 0 and c in "\n;,":
            return _last_term(code[i + 1:end])
    return _last_term(code[:end])


def _last_term(text: str) -> str:
    """What follows the last keyword or assignment in ``text`` (``foo if not x`` -> ``x``)."""
    return re.split(r"\b(?:if|not|else|some|with|default|contains)\b|:=|(?<![=!<>:])=(?!=)", text)[-1].strip()


def _comparisons(code: str, ref: re.Pattern[str]) -> list[str]:
    """``==``/``!=``/``in`` tests of the target id against something the sweep does not try as an id."""
    hits: list[str] = []
    for m in re.finditer(r"(==|!=)", code):
        left, right = _operand_before(code, m.start()), _operand_after(code, m.end())
        for mine, other in ((left, right), (right, left)):
            if ref.fullmatch(mine) and not _SWEPT_OPERAND.fullmatch(other):
                hits.append(f"{m.group(1)} with a computed value")
    for m in re.finditer(ref.pattern + r"\s+in\s+", code):
        other = _operand_after(code, m.end())
        if not re.fullmatch(r'\[\s*(?:""\s*,\s*)*(?:""\s*)?\]', other) and not _SWEPT_OPERAND.fullmatch(other):
            hits.append("in with a computed collection")
    return hits


def target_tests(modules: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(module, builtin)`` for each test on the target id the literal sweep cannot exercise (see module docstring).

    ``startswith``/``endswith``/``contains(id, "literal")`` is not listed: trying the literal, and the literal
    with a prefix or suffix, as target ids exercises it. Indexing the id is listed as ``indexing``.
    """
    found: list[tuple[str, str]] = []
    for name, src in modules:
        code = scan(src).code
        ref = _target_refs(code)
        if ref is None:
            found.append((name, f"more than {MAX_ALIAS_ROUNDS} rounds of names bound to"))
            continue
        hits: list[str] = []
        if re.search(ref.pattern + r"\s*\[", code):
            hits.append("indexing")
        hits.extend(_comparisons(code, ref))
        for m in _STRING_TESTS.finditer(code):
            call = re.sub(r"\s+", "", m.group(1))
            args = _args(code, m.end() - 1)
            if not any(ref.search(a) for a in args):
                continue
            if (call in ("startswith", "endswith", "contains") and len(args) == 2 and ref.fullmatch(args[0])
                    and args[1] == '""'):
                continue
            hits.append(call)
        for call in hits:
            if (name, call) not in found:
                found.append((name, call))
    return found

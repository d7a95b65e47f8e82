"""Fuzz every command that reads a file or stdin with random bytes, random JSON and random YAML.

Whatever arrives, a command ends with an exit code from the contract
(0-5), prints no traceback, and finishes in bounded time; a few hostile
inputs also run through the real console script in a subprocess, with
its peak memory measured. Examples are few per command (the suite must
stay fast) and derandomized in CI by the ``ci`` profile in
``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitlgate.engine import load_inventory
from hitlgate.engine.config import Config
from hitlgate.engine.decide.scenarios import load_scenarios
from hitlgate.errors import HitlgateError
from tests.conftest import make_proposal
from tests.core._hostile import EXIT_CODES, project, run

#: Wall time one command may take on any input (a regopy compile is the slow part).
SECONDS = 15

_fuzz = settings(
    max_examples=20,
    deadline=timedelta(seconds=SECONDS),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies ------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)

# Fragments that have broken parsers before: nesting, escapes, YAML features, odd bytes.
_hostile_fragments = st.sampled_from([
    b"[" * 5000, b"{" * 3000, b'"\\ud800"', b'"\\u0000"', b"NaN", b"1e999999", b"9" * 5000,
    b"\xef\xbb\xbf", b"\x00", b"\xff\xfe", b"&a [1]", b"*a", b"<<: {}", b"!!python/object:os.system", b"---\n",
    b"\t", b": :", b"- - - -", b'{"a": 1, "a": 2}',
])


@st.composite
def proposal_like(draw: st.DrawFn) -> bytes:
    """A proposal with random values at random places: gets past the JSON parser into validation."""
    doc: dict[str, Any] = make_proposal()
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["root", "action", "parameters", "requester"]))
        key = draw(st.sampled_from(["type", "target", "id", "kind", "justification", "evidence", "confidence", "x"]))
        value = draw(json_values)
        if where == "root":
            doc[key] = value
        elif where == "action":
            doc["action"][key] = value
        elif where == "parameters":
            doc["action"]["parameters"][key] = value
        else:
            doc["requester"][key] = value
    return json.dumps(doc).encode()


@st.composite
def spliced(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """A document with a hostile fragment spliced in at a random place."""
    body = draw(base)
    at = draw(st.integers(0, len(body)))
    return body[:at] + draw(_hostile_fragments) + body[at:]


json_documents = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    proposal_like(),
    spliced(proposal_like()),
)


def _yaml_of(value: Any) -> bytes:
    return yaml.safe_dump(value, allow_unicode=True).encode("utf-8", "surrogatepass")


inventory_like = st.fixed_dictionaries(
    {},
    optional={
        "teams": st.dictionaries(st.text(max_size=8), json_values, max_size=3),
        "identities": st.dictionaries(st.text(max_size=8), json_values, max_size=3),
        "approvers": st.dictionaries(st.text(max_size=8), json_values, max_size=2),
        "protected": st.lists(st.text(max_size=8), max_size=3),
    },
)
yaml_documents = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(_yaml_of),
    inventory_like.map(_yaml_of),
    spliced(inventory_like.map(_yaml_of)),
)


def _timed(args: list[str], **kwargs: Any) -> None:
    started = time.monotonic()
    run(args, **kwargs)  # asserts: an exit code from the contract, no traceback, no uncaught exception
    assert time.monotonic() - started < SECONDS


# -- in process (click's CliRunner) ---------------------------------------------------


@_fuzz
@given(body=json_documents)
def test_fuzz_decide(tmp_path: Path, body: bytes) -> None:
    f = tmp_path / "p.json"
    f.write_bytes(body)
    _timed(["decide", "--json", str(f)])


@_fuzz
@given(body=json_documents)
def test_fuzz_decide_stdin(body: bytes) -> None:
    _timed(["decide", "-"], stdin=body)


@_fuzz
@given(body=json_documents)
def test_fuzz_propose(tmp_path: Path, pack_copy: Path, body: bytes) -> None:
    f = tmp_path / "p.json"
    f.write_bytes(body)
    _timed(["propose", "--json", str(f)], config=project(tmp_path, pack_copy))


signed_like = json_values.map(lambda v: json.dumps({"statement": v, "signature": "s"}).encode())
tokens = st.one_of(
    st.binary(max_size=200),
    st.from_regex(r"[A-Za-z0-9_-]{1,60}\.[A-Za-z0-9_-]{1,60}\.[A-Za-z0-9_-]{0,60}", fullmatch=True).map(str.encode),
)


@_fuzz
@given(body=st.one_of(json_documents, signed_like))
def test_fuzz_approve_signed(tmp_path: Path, pack_copy: Path, body: bytes) -> None:
    f = tmp_path / "signed.json"
    f.write_bytes(body)
    _timed(["approve", "--signed", str(f)], config=project(tmp_path, pack_copy))


@_fuzz
@given(action=json_documents, token=tokens)
def test_fuzz_verify(tmp_path: Path, pack_copy: Path, action: bytes, token: bytes) -> None:
    a = tmp_path / "action.json"
    a.write_bytes(action)
    w = tmp_path / "warrant.jws"
    w.write_bytes(token)
    _timed(["verify", str(a), "--warrant", str(w)], config=project(tmp_path, pack_copy))


@settings(_fuzz, max_examples=8)
@given(body=yaml_documents)
def test_fuzz_policy_test_inventory(tmp_path: Path, pack_copy: Path, body: bytes) -> None:
    config = project(tmp_path, pack_copy, inventory=body)
    _timed(["policy", "test", "--no-rego-tests", "--json"], config=config)


@settings(_fuzz, max_examples=60)
@given(body=yaml_documents)
def test_fuzz_inventory_loading(tmp_path: Path, body: bytes) -> None:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "inventory.yaml").write_bytes(body)
    try:
        load_inventory([data])
    except HitlgateError:
        pass  # a refusal is fine; any other exception fails the test


@settings(_fuzz, max_examples=40)
@given(body=yaml_documents)
def test_fuzz_scenario_and_config_loading(tmp_path: Path, body: bytes) -> None:
    (tmp_path / "s.yaml").write_bytes(body)
    (tmp_path / "hitlgate.yaml").write_bytes(body)
    for load in (lambda: load_scenarios([tmp_path / "s.yaml"]), lambda: Config.from_file(tmp_path / "hitlgate.yaml")):
        try:
            load()
        except HitlgateError:
            pass


# -- through the console script ------------------------------------------------------

_MB = 1024 * 1024


def _laughs() -> bytes:
    lines = ['teams: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"w{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    ("proposal", "inventory"),
    [
        pytest.param(bytes(range(256)) * 4096, None, id="random-bytes-1MB"),
        pytest.param(json.dumps(make_proposal(justification="A" * 20 * _MB)).encode(), None, id="20MB-proposal"),
        pytest.param(b"[" * 60_000 + b"]" * 60_000, None, id="deep-json"),
        pytest.param(json.dumps(make_proposal()).encode(), _laughs(), id="billion-laughs-inventory"),
    ],
)
def test_fuzz_hostile_input_through_the_console_script(
    tmp_path: Path, pack_copy: Path, proposal: bytes, inventory: bytes | None
) -> None:
    config = project(tmp_path, pack_copy, inventory=inventory)
    (tmp_path / "stdin").write_bytes(proposal)
    started = time.monotonic()
    with (tmp_path / "stdin").open("rb") as fin, (tmp_path / "stdout").open("wb") as fout, \
            (tmp_path / "stderr").open("wb") as ferr:
        child = subprocess.Popen(
            [sys.executable, "-c", "from hitlgate.cli import main; main()", "--config", str(config), "decide",
             "--json", "-"], stdin=fin, stdout=fout, stderr=ferr,
        )
        killer = threading.Timer(60, child.kill)
        killer.start()
        try:
            # wait4: the peak memory of this child alone (RUSAGE_CHILDREN would be the largest of every
            # child this test process ever had, e.g. a forked copy of a big test runner).
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            killer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    stdout, stderr = (tmp_path / "stdout").read_bytes(), (tmp_path / "stderr").read_bytes()
    peak_mb = usage.ru_maxrss / 1024
    assert child.returncode in EXIT_CODES, stderr
    assert b"Traceback" not in stderr, stderr.decode(errors="replace")
    assert elapsed < 30
    assert peak_mb < 1024, f"the CLI process peaked at {peak_mb:.0f} MB"
    doc = json.loads(stdout)  # under --json, stdout is one JSON document whatever happened
    if "tier" in doc:
        assert doc["tier"] == "deny"  # a broken inventory fails closed
    else:
        assert doc["error"]["exit_code"] == child.returncode == 2

"""Fault and tampering: lines of the audit anchor file that are not signed checkpoints.

Reading the anchor (``audit verify``, the guard's comparison) refuses any
complete line that is not a JSON object with ``"record": "checkpoint"``,
naming the file, the line and what is wrong with it; it skips blank lines
(and keeps reading after them); an anchor path it cannot open is a storage
error with the operating system's reason.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from hitlgate.engine.approve.workflow import Engine
from hitlgate.engine.ledger.anchor import AuditAnchor
from hitlgate.errors import AuditChainError, InvalidWarrant, StorageError
from tests.workflow._helpers import granted_warrant, proposal

DOC = proposal("suspend_service_account", "svc-ci-runner")
CODE = "audit_chain_broken"  # The anchor's own refusal code, passed through.


@pytest.fixture
def checkpoint_line(make_engine) -> str:  # noqa: ANN001
    """One genuine anchor line, as the engine wrote it."""
    engine: Engine = make_engine()
    engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
    engine.checkpoint()
    (line,) = engine.anchor.path.read_text(encoding="utf-8").splitlines(keepends=True)
    return line


def _anchor(tmp_path: Path, text: str) -> AuditAnchor:
    path = tmp_path / "copy" / "audit-anchor.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return AuditAnchor(path)


def test_blank_lines_are_skipped_and_reading_goes_on(tmp_path: Path, checkpoint_line: str) -> None:
    anchor = _anchor(tmp_path, "\n  \n" + checkpoint_line + "\n" + checkpoint_line)
    assert [cp.seq for cp in anchor.iter_checkpoints()] == [2, 2]


@pytest.mark.parametrize(("line", "why"), [
    ("[1, 2]", "not a JSON object"),
    ('{"seq": 2}', "unknown record type None"),
    ('{"record": "audit"}', "unknown record type 'audit'"),
])
def test_a_line_that_is_not_a_checkpoint_is_refused_by_line(tmp_path: Path, checkpoint_line: str, line: str,
                                                              why: str) -> None:
    anchor = _anchor(tmp_path, checkpoint_line + line + "\n")
    with pytest.raises(AuditChainError, match="^" + re.escape(f"audit anchor {anchor.path}: export line 2 is "
                                                              f"malformed: {why}") + "$"):
        list(anchor.iter_checkpoints())


def test_a_checkpoint_line_without_its_record_type_is_refused(tmp_path: Path, checkpoint_line: str) -> None:
    doc = json.loads(checkpoint_line)
    del doc["record"]
    anchor = _anchor(tmp_path, json.dumps(doc) + "\n")
    with pytest.raises(AuditChainError, match="export line 1 is malformed: unknown record type None$"):
        list(anchor.iter_checkpoints())


def test_an_anchor_path_that_cannot_be_opened_names_the_reason(tmp_path: Path) -> None:
    loop = tmp_path / "audit-anchor.jsonl"
    os.symlink(loop, loop)
    with pytest.raises(StorageError, match="^" + re.escape(f"cannot read audit anchor {loop}: Too many levels of "
                                                           "symbolic links") + "$"):
        list(AuditAnchor(loop).iter_checkpoints())


def test_guard_refuses_a_warrant_while_the_anchor_cannot_be_read(make_engine) -> None:  # noqa: ANN001
    # Fail closed: the guard compares the chain with the anchor before it consumes; an anchor it cannot
    # read refuses the warrant, with the anchor's own reason and code. The refusal cannot be recorded
    # (recording appends to the chain, which checks the anchor first): the log says so, and nothing is used.
    engine: Engine = make_engine()
    req, token = granted_warrant(engine, DOC, ("carol",))
    with engine.anchor.path.open("a", encoding="utf-8") as f:
        f.write("not a checkpoint\n")
    ran: list[object] = []
    with pytest.raises(InvalidWarrant, match="^" + re.escape(
            f"invalid warrant: the last line of the audit anchor {engine.anchor.path} is malformed: Expecting "
            "value: line 1 column 1 (char 0)") + "$") as exc:
        engine.guard().execute(token, DOC["action"], ran.append)
    assert exc.value.code == CODE and not ran
    assert [e.kind for e in engine.audit_events(req.id)][-1] == "warrant_issued"
    assert engine.get(req.id).status == "granted"


def test_checkpoints_appended_in_one_call_are_one_line_each(make_engine, tmp_path: Path) -> None:  # noqa: ANN001
    # An append of several checkpoints (a recovery writes the ones the anchor lost) is one write of whole lines.
    engine: Engine = make_engine()
    for target in ("svc-ci-runner", "svc-payments-key"):
        engine.propose(proposal("suspend_service_account", target))
        engine.checkpoint()
    written = engine.anchor.path.read_text(encoding="utf-8")
    checkpoints = list(engine.anchor.iter_checkpoints())
    assert len(checkpoints) == 2 and checkpoints[0].seq < checkpoints[1].seq

    again = AuditAnchor(tmp_path / "again" / "audit-anchor.jsonl")
    again.path.parent.mkdir()
    again.append(checkpoints)
    assert again.path.read_text(encoding="utf-8") == written
    assert list(again.iter_checkpoints()) == checkpoints

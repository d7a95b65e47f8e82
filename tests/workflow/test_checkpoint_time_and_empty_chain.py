"""Fault: a checkpoint on demand signs a time other than the one asked for, or checkpoints an empty chain.

``Engine.checkpoint(now=...)`` must sign exactly the time given (tests and
replays pass one; the wall clock or the engine's clock must not replace it);
an empty audit chain has no head to checkpoint and is refused with a message
that says so. Real SQLite (and PostgreSQL where marked), the embedded engine.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from hitlgate.errors import StorageError
from tests.workflow._helpers import T0, proposal
from tests.workflow.conftest import EngineFactory


def test_checkpoint_signs_the_explicit_time_given(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.propose(proposal("rotate_api_key", "dev-analytics-key"))
    at = T0 + timedelta(minutes=7)
    cp = engine.checkpoint(now=at)
    assert cp.at == at


def test_checkpoint_of_an_empty_chain_is_refused(make_engine: EngineFactory) -> None:
    engine = make_engine()
    empty = "^" + re.escape("the audit chain is empty; there is nothing to checkpoint") + "$"
    with pytest.raises(StorageError, match=empty):
        engine.checkpoint(now=T0)

"""``Engine.from_config`` builds the engine on the clock it is given, not the wall clock.

The CLI, the service and tests choose the clock; an engine built from a
configuration that quietly used the wall clock would date proposals, votes
and deadlines at another time than the caller's.
"""

from __future__ import annotations

from pathlib import Path

from hitlgate.engine import Config
from hitlgate.engine.approve.workflow import Engine
from tests.workflow._helpers import T0, FakeClock, proposal


def test_engine_from_config_dates_a_proposal_by_its_clock(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    config = Config(state_url=f"sqlite:///{tmp_path / 'state.db'}", key_dir=tmp_path / "keys")
    with Engine.from_config(config, clock=clock) as engine:
        assert engine.now() == T0
        req = engine.propose(proposal("suspend_service_account", "svc-ci-runner"))
        assert req.created_at == T0

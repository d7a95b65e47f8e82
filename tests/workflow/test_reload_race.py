"""Fault: a broken policy is deployed and fixed again within milliseconds, while the engine reloads.

Before the fix, the fingerprint remembered after a failed load was taken
*after* the load, so when the fixed files landed while the broken ones were
being loaded, the fixed files were remembered as broken and the engine
denied everything until some file changed again (3 of 6 cycles under
load). The backend now fingerprints before loading and re-checks after.
Real regopy, real files; the fix lands while the broken pack is loading.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from hitlgate.engine import Decider
from hitlgate.engine.decide._regopy import RegopyBackend
from tests.workflow._helpers import proposal

DOC = proposal("suspend_service_account", "svc-ci-runner")


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def test_fix_landing_during_a_failed_reload_is_picked_up(pack_copy: Path) -> None:
    module = pack_copy / "decision.rego"
    good = module.read_text()
    broken = good + "\nthis is not rego {\n"
    decider = Decider(RegopyBackend(pack_copy, [pack_copy / "data"]))
    assert decider.decide(DOC).tier == "single_approval"
    stuck = 0
    for _cycle in range(4):
        _write(module, broken)
        # The fix lands a few milliseconds into the reload of the broken
        # pack (loading the inventory alone takes far longer than that).
        fixer = threading.Timer(0.03, _write, (module, good))
        fixer.start()
        decider.decide(DOC)  # Reloads; fails closed or, if the fix won the race, decides.
        fixer.join(timeout=30)
        assert not fixer.is_alive()
        time.sleep(0.01)
        decision = decider.decide(DOC)
        if decision.tier != "single_approval":
            stuck += 1
            _write(module, good + "\n")  # Unstick it for the next cycle.
            decider.decide(DOC)
    assert stuck == 0, f"{stuck} of 4 cycles left the engine denying with the fixed pack on disk"

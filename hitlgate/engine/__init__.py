"""The public engine API.

Everything a caller needs to decide proposals lives here; engine internals
(regopy, OPA, SQL, crypto details) are in private ``_`` modules. The code
lives in one folder per wing: ``decide/`` (policy pack, inventory,
backends), ``approve/`` (votes, quorum, lifecycle, the Engine facade, the
guard), ``ledger/`` (store, audit chain, anchor, audit log) and ``keys/``
(engine keyring, warrants, API keys); what every wing shares (config,
limits, canonical JSON, time, files, safe parsing) stays here.
"""

from typing import TYPE_CHECKING, Any

from hitlgate.engine.config import BackendConfig, Config, load_config
from hitlgate.engine.decide.backends import PolicyBackend
from hitlgate.engine.decide.decider import Decider, backend_from_config
from hitlgate.engine.decide.decision import TIER_RANK, TIERS, Decision, Quorum, QuorumSlot
from hitlgate.engine.decide.inventory import Approver, Inventory, load_inventory
from hitlgate.engine.decide.policy import PolicyPack
from hitlgate.engine.decide.proposal import Proposal, action_digest, canonical_json

if TYPE_CHECKING:
    from hitlgate.engine.approve.guard import Grant, Guard
    from hitlgate.engine.approve.quorum import QuorumProgress
    from hitlgate.engine.approve.workflow import Engine
    from hitlgate.engine.ledger.store import Request, Store

# The workflow half (SQLAlchemy, the store, the guard) is imported on first
# use, so `hitlgate decide` and agents that only ask for decisions do not pay
# for it at start-up.
_LAZY = {
    "Engine": "hitlgate.engine.approve.workflow",
    "Grant": "hitlgate.engine.approve.guard",
    "Guard": "hitlgate.engine.approve.guard",
    "QuorumProgress": "hitlgate.engine.approve.quorum",
    "Request": "hitlgate.engine.ledger.store",
    "Store": "hitlgate.engine.ledger.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

__all__ = [
    "TIERS",
    "TIER_RANK",
    "Approver",
    "BackendConfig",
    "Config",
    "Decider",
    "Decision",
    "Engine",
    "Grant",
    "Guard",
    "Inventory",
    "PolicyBackend",
    "PolicyPack",
    "Proposal",
    "Quorum",
    "QuorumProgress",
    "QuorumSlot",
    "Request",
    "Store",
    "action_digest",
    "backend_from_config",
    "canonical_json",
    "load_config",
    "load_inventory",
]

"""The deciding wing: from a proposal to a decision.

The policy pack (:mod:`.policy`), the trusted inventory (:mod:`.inventory`
from files, :mod:`.inventory_db` from the database) and the facts drawn from
it (:mod:`.facts`), the proposal and decision documents (:mod:`.proposal`,
:mod:`.decision`, :mod:`.schemas`), the policy backends (:mod:`.backends`:
embedded regopy in :mod:`._regopy`, an OPA server in :mod:`._opa`) behind
the :class:`~hitlgate.engine.decide.decider.Decider`, and the tools around a
pack (bundles, scenarios, ``doctor``, ``policy test``).
"""

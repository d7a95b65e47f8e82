"""The approving wing: from a decision to a warrant and an executed action.

Signed approval statements (:mod:`.approvals`), quorum matching
(:mod:`.quorum`), the request lifecycle (:mod:`.lifecycle`), the
:class:`~hitlgate.engine.approve.workflow.Engine` facade that ties them to
the store and the audit log (:mod:`.workflow`), the executor's
:class:`~hitlgate.engine.approve.guard.Guard`, and the reconciliation of the
tables against the audit chain (:mod:`._reconcile`).
"""

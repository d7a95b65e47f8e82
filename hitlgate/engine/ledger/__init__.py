"""The ledger wing: what is stored and what proves it was not changed.

The state store and its schema (:mod:`.store`, :mod:`._store_schema`), the
hash-chained audit events and signed checkpoints (:mod:`.audit`), the
anchor file outside the database (:mod:`.anchor`), and the
:class:`~hitlgate.engine.ledger.auditlog.AuditLog` through which every
audit event is appended and checkpointed (:mod:`.auditlog`).
"""

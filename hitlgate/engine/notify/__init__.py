"""Notifications: audit events after a cursor become messages to the owner team and eligible approvers.

* :mod:`~hitlgate.engine.notify.dispatcher`: :func:`dispatch` (enqueue, then deliver);
* :mod:`~hitlgate.engine.notify.settings`: ``notifications:`` in ``hitlgate.yaml`` (channels, routes);
* :mod:`~hitlgate.engine.notify.plugins`: the :class:`Notifier` interface, entry point group ``hitlgate.notifiers``;
* :mod:`~hitlgate.engine.notify.outbox`: the outbox, the delivery log and dead letters in the state store;
* built-in channels: :mod:`~hitlgate.engine.notify.webhook` (Standard Webhooks),
  :mod:`~hitlgate.engine.notify.slack` (incoming webhook, no approve button), :mod:`~hitlgate.engine.notify.smtp`.
"""

from __future__ import annotations

from typing import Any

# Loaded on first use: the configuration imports the settings module, and
# commands that never open the store must not pay for SQLAlchemy.
_LAZY = {
    "dispatch": "dispatcher", "deliver_due": "dispatcher", "enqueue_new": "dispatcher", "DispatchReport": "dispatcher",
    "DeliveryError": "plugins", "Message": "plugins", "Notifier": "plugins", "NotifierPlugin": "plugins",
    "Recipient": "plugins", "EVENTS": "settings", "NotificationSettings": "settings",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

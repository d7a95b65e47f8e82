"""The ``email`` channel: a plain-text mail over SMTP (``smtplib``), optionally upgraded with STARTTLS.

Recipients are the configured ``to`` addresses plus, with
``to_approvers: true`` (the default), the addressed approvers' ``email``
from the trusted inventory. The subject carries agent-written text (the
target), so every header value is flattened to one line first: a line
break in a proposal must not add a header (``Bcc:``) to the mail.

With ``starttls: true`` the connection is upgraded before anything else is
said, the server certificate verified against the system's trust store (or
``ca_file``); a server that does not offer STARTTLS fails the delivery
instead of sending in the clear. A password, if any, comes from the
environment variable ``password_env`` at delivery time and is never logged.

Settings: ``host``, ``port`` (default 25, or 587 with STARTTLS), ``from``,
``to`` (list), ``to_approvers``, ``starttls``, ``ca_file``, ``username``,
``password_env``, ``timeout_seconds`` (default 10: the longest one delivery
may take, the whole conversation included).
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, ClassVar

from hitlgate.engine.notify.plugins import (
    DeliveryError,
    Message,
    NotifierPlugin,
    hard_deadline,
    one_line,
    require_known,
    secret_from_env,
    setting_env,
    setting_number,
    setting_str,
)
from hitlgate.errors import ConfigError

DEFAULT_TIMEOUT_SECONDS = 10.0
#: Host names that never leave this machine (a local relay may take a password without TLS).
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})

#: One bare address (local@domain): no space, comma, angle bracket or quote, so a value can never
#: smuggle a second recipient or a display name into a header or an RCPT TO.
_ADDRESS = re.compile(r"[^\s@,;:<>()\[\]\"\\]+@[^\s@,;:<>()\[\]\"\\]+")


def is_address(value: object) -> bool:
    """Whether ``value`` is one bare email address (see :data:`_ADDRESS`)."""
    return isinstance(value, str) and len(value) <= 254 and _ADDRESS.fullmatch(value) is not None


def compose(message: Message, *, sender: str, to: tuple[str, ...]) -> EmailMessage:
    """The mail for ``message``: one-line headers, the summary, the console link and the recipients."""
    mail = EmailMessage()
    mail["Subject"] = one_line(f"[hitlgate] {message.event}: {message.summary}", 200)
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = format_datetime(message.at)
    mail["Message-ID"] = make_msgid(idstring=message.id, domain="hitlgate")
    lines = [
        message.summary,
        "",
        f"Open the request in the console: {message.url}",
        "",
        f"Event: {message.event}",
        f"Request: {message.request_id}",
        f"Tier: {message.tier}",
    ]
    if message.teams:
        lines.append(f"Owner team: {', '.join(message.teams)}")
    if message.approvers:
        lines.append(f"Approvers: {', '.join(a.name for a in message.approvers)}")
    lines += ["", "Approve or reject in the console or with `hitlgate approve`; this mail is only a notice."]
    mail.set_content("\n".join(lines) + "\n")
    return mail


class EmailNotifier(NotifierPlugin):
    """SMTP delivery."""

    type: ClassVar[str] = "email"
    _KNOWN: ClassVar[set[str]] = {"host", "port", "from", "to", "to_approvers", "starttls", "ca_file", "username",
                                  "password_env", "timeout_seconds"}

    def __init__(self, name: str, *, host: str, port: int, sender: str, to: tuple[str, ...], to_approvers: bool,
                 starttls: bool, ca_file: str | None, username: str | None, password_env: str | None,
                 timeout: float, where: str) -> None:
        super().__init__(name)
        self.host, self.port, self.sender, self.to = host, port, sender, to
        self.to_approvers, self.starttls, self.ca_file = to_approvers, starttls, ca_file
        self.username, self.password_env, self.timeout, self.where = username, password_env, timeout, where

    def __repr__(self) -> str:
        return f"EmailNotifier({self.name!r}, {self.host}:{self.port})"

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, Any], *, where: str, public_url: str) -> EmailNotifier:
        """Check the SMTP settings."""
        require_known(settings, cls._KNOWN, where)
        host = setting_str(settings, "host", where)
        sender = setting_str(settings, "from", where)
        to = settings.get("to", [])
        if not isinstance(to, list) or not all(is_address(a) for a in to):
            raise ConfigError(f"{where}.to: must be a list of email addresses (each one bare local@domain)")
        for key in ("to_approvers", "starttls"):
            if not isinstance(settings.get(key, True if key == "to_approvers" else False), bool):
                raise ConfigError(f"{where}.{key}: must be true or false")
        starttls = bool(settings.get("starttls", False))
        port = setting_number(settings, "port", where, default=587 if starttls else 25, low=1, high=65535)
        if sender is None or not is_address(sender):
            raise ConfigError(f"{where}.from: must be one email address (bare local@domain)")
        username = setting_str(settings, "username", where, required=False)
        password_env = setting_env(settings, "password_env", where, required=False)
        if (username is None) != (password_env is None):
            raise ConfigError(f"{where}: username and password_env go together")
        if username is not None and not starttls and host not in _LOOPBACK:
            # SMTP AUTH PLAIN/LOGIN is the password in base64: without TLS anyone on the path reads it.
            raise ConfigError(f"{where}.starttls: must be true when username and password_env are set (the "
                              "password would cross the network in clear); only a server on this host is exempt")
        assert host is not None  # noqa: S101 - required=True never returns None.
        return cls(name, host=host, port=int(port), sender=sender, to=tuple(to),
                   to_approvers=bool(settings.get("to_approvers", True)), starttls=starttls,
                   ca_file=setting_str(settings, "ca_file", where, required=False), username=username,
                   password_env=password_env,
                   timeout=setting_number(settings, "timeout_seconds", where, default=DEFAULT_TIMEOUT_SECONDS,
                                          low=0.1, high=120),
                   where=where)

    def recipients(self, message: Message) -> tuple[str, ...]:
        """The configured addresses plus the addressed approvers' (each once), each one bare address.

        An inventory ``email`` such as ``"alice@example.com, eve@evil.example"`` would otherwise add a recipient.
        """
        extra = message.emails if self.to_approvers else ()
        return tuple(dict.fromkeys(a for a in (*self.to, *extra) if is_address(a)))

    def deliver(self, message: Message) -> None:
        """Send the mail; raise on any SMTP or connection error, or when there is nobody to send to."""
        to = self.recipients(message)
        if not to:
            raise DeliveryError(f"{self.where}: no recipient (set to, or give approvers an email in the inventory)")
        mail = compose(message, sender=self.sender, to=to)
        smtp = smtplib.SMTP(timeout=self.timeout)
        # One deadline for the whole conversation: a server that drips its
        # replies a byte at a time never trips a per-read timeout.
        with hard_deadline(lambda: smtp.sock, self.timeout) as expired:
            try:
                smtp.connect(self.host, self.port)
                if expired.is_set():
                    raise TimeoutError("deadline passed while connecting")
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
                if self.username is not None:
                    smtp.login(self.username, secret_from_env(str(self.password_env), f"{self.where}.password_env"))
                refused = smtp.send_message(mail, from_addr=self.sender, to_addrs=list(to))
                # The mail is taken once send_message returns: a failed goodbye must not send it again.
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    smtp.quit()
            except (smtplib.SMTPException, OSError, ValueError) as exc:
                if expired.is_set():
                    raise DeliveryError(f"SMTP {self.host}:{self.port}: Timeout: the conversation took longer "
                                        f"than {self.timeout:g} s") from None
                raise DeliveryError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: "
                                    f"{one_line(str(exc), 300)}") from None
            finally:
                smtp.close()
        if refused and len(refused) == len(to):
            raise DeliveryError(f"SMTP {self.host}:{self.port} refused every recipient")

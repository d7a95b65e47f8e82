"""Threat: a machine in the middle answers for an https receiver with a certificate of its own.

A real TLS server on 127.0.0.1 (certificates made here with
``cryptography``): an https webhook delivers when the receiver's
certificate is trusted (the channel's ``ca_file``, as an operator's private
CA would be) and names the host; it fails, sending nothing, when the
certificate is self-signed and untrusted, or trusted but issued for another
host name.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hitlgate.engine.notify.dispatcher import dispatch
from hitlgate.engine.notify.plugins import DeliveryError
from hitlgate.engine.notify.settings import NotificationSettings
from hitlgate.engine.notify.webhook import post_json
from tests.notify.conftest import read_http_request, webhook_settings
from tests.workflow._helpers import FakeClock, proposal
from tests.workflow.conftest import EngineFactory


def _certificate(tmp_path: Path, name: str, san: x509.GeneralName) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class TlsReceiver:
    """An https server on 127.0.0.1 that answers every request 204 and counts the requests it read."""

    started: ClassVar[list[TlsReceiver]] = []

    def __init__(self, cert: Path, key: Path) -> None:
        TlsReceiver.started.append(self)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    if read_http_request(conn):
                        self.requests += 1
                        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
            except (OSError, ssl.SSLError):
                pass  # The client refused our certificate.


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[dict[str, tuple[Path, Path]]]:
    yield {
        "right": _certificate(tmp_path, "receiver", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
        "other": _certificate(tmp_path, "elsewhere", x509.DNSName("receiver.example.com")),
    }
    for server in TlsReceiver.started:
        server.sock.close()
    TlsReceiver.started.clear()


def test_trusted_certificate_for_the_host_delivers(
    tls: dict, make_engine: EngineFactory, webhook_secret: str, clock: FakeClock
) -> None:
    server = TlsReceiver(*tls["right"])
    doc = webhook_settings(server.url)
    doc["channels"][0]["settings"].update(ca_file=str(tls["right"][0]), timeout_seconds=10)
    engine = make_engine(config={"notifications": NotificationSettings.from_dict(doc)})
    engine.propose(proposal())
    assert dispatch(engine, clock.now).delivered == 1 and server.requests == 1


@pytest.mark.parametrize("trusted", ["other", None])
def test_self_signed_certificate_is_refused(tls: dict, trusted: str | None) -> None:
    # Trusting another certificate, or the system's store: neither knows this one.
    server = TlsReceiver(*tls["right"])
    ca_file = None if trusted is None else str(tls[trusted][0])
    with pytest.raises(DeliveryError, match=r"127\.0\.0\.1:\d+: SSLCertVerificationError: .*CERTIFICATE_VERIFY_FAILED"):
        post_json(server.url, b"{}", {}, 10, ca_file=ca_file)
    assert server.requests == 0


def test_trusted_certificate_for_another_host_is_refused(tls: dict) -> None:
    server = TlsReceiver(*tls["other"])
    with pytest.raises(DeliveryError, match=r"SSLCertVerificationError: .*IP address mismatch"):
        post_json(server.url, b"{}", {}, 10, ca_file=str(tls["other"][0]))
    assert server.requests == 0

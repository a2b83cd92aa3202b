"""TLS for local peers: a private CA and a localhost certificate, and client contexts that trust it.

The emulators speak TLS like the real services, so the real client libraries run unchanged against
them; only the trust store differs. :func:`local_tls` makes (or reuses) a CA and a leaf certificate
for ``localhost``, ``127.0.0.1`` and ``::1`` with ``trustme``, whose certificates carry the
extensions strict verification asks for (hand-made self-signed certificates tend to fail it).

Files in the folder::

    ca.pem        the CA certificate: give it to clients (PUSHGATE_CA_BUNDLE)
    ca-key.pem    the CA private key (mode 0600), kept so client certificates can be issued later
    server.pem    the server's private key, certificate and chain (mode 0600)

:func:`core.tls.client_context` is what providers use: the default trust store plus an optional
extra CA file, so one setting serves Apple, Google and a local emulator alike; it lives in core so
that production code never imports ``trustme``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme

from core.tls import client_context

SERVER_IDENTITIES = ("localhost", "127.0.0.1", "::1")
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_FILE = "server.pem"


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate issued by the local CA: PEM key plus certificate chain."""

    pem: bytes  # private key, certificate, chain (what ssl.SSLContext.load_cert_chain reads)
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class LocalTLS:
    """The files of a local CA and server certificate, and contexts built from them."""

    folder: Path

    @property
    def ca_path(self) -> Path:
        return self.folder / CA_FILE

    @property
    def server_path(self) -> Path:
        """PEM file with the server key, certificate and chain (for servers that take a path)."""
        return self.folder / SERVER_FILE

    def server_context(
        self, *, alpn: Sequence[str] = ("h2", "http/1.1"), client_ca: Path | None = None
    ) -> ssl.SSLContext:
        """A server-side context for the localhost certificate.

        With ``client_ca`` the server asks for a client certificate (optional) and verifies one
        when presented: that is how APNs certificate authentication is emulated.
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_path)
        if alpn:
            context.set_alpn_protocols(list(alpn))
        if client_ca is not None:
            context.load_verify_locations(cafile=str(client_ca))
            context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the default store and this CA."""
        return client_context(self.ca_path)

    def issue_client_cert(self, common_name: str) -> ClientCertificate:
        """A client certificate signed by this CA, e.g. ``Apple Push Services: com.example.app``."""
        ca = trustme.CA.from_pem(self.ca_path.read_bytes(), (self.folder / CA_KEY_FILE).read_bytes())
        leaf = ca.issue_cert(common_name=common_name)
        cert = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        key = leaf.private_key_pem.bytes()
        return ClientCertificate(pem=leaf.private_key_and_cert_chain_pem.bytes(), cert_pem=cert, key_pem=key)


def local_tls(folder: Path) -> LocalTLS:
    """Create the CA and server certificate in ``folder``, or reuse them when all files exist."""
    folder.mkdir(parents=True, exist_ok=True)
    tls = LocalTLS(folder)
    if all((folder / name).is_file() for name in (CA_FILE, CA_KEY_FILE, SERVER_FILE)):
        return tls
    ca = trustme.CA(organization_name="pushgate local CA")
    leaf = ca.issue_cert(*SERVER_IDENTITIES, common_name="localhost")
    _write_private(folder / CA_KEY_FILE, ca.private_key_pem.bytes())
    _write_private(folder / SERVER_FILE, leaf.private_key_and_cert_chain_pem.bytes())
    # ca.pem last: its presence together with the others marks a complete set.
    (folder / CA_FILE).write_bytes(ca.cert_pem.bytes())
    return tls


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (created 0600, never world-readable)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)

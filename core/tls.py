"""TLS client contexts for the push providers and the Platform client.

One setting (``PUSHGATE_CA_BUNDLE``) serves Apple, Google and a local peer alike: the default
trust store plus the extra CAs of that file. Making certificates for local peers is the peers'
business (``push/peers/tls.py``, which needs ``trustme``); production code only trusts them.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(ca_bundle: Path | None = None) -> ssl.SSLContext:
    """The default trust store plus ``ca_bundle`` (PEM, one or more CAs) when given.

    A new context on each call: callers may set ALPN or load a client certificate on it.
    """
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context

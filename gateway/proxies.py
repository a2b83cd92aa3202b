"""The client's address, scheme and host behind trusted reverse proxies (``PUSHGATE_TRUSTED_PROXIES``).

A request's ``X-Forwarded-*`` headers are believed only when the socket's peer is a trusted proxy;
anyone else could write them and pick their own address (and so their own rate-limit bucket).
``X-Forwarded-For`` is read from the right: each proxy appends the address it received the
request from, so the client is the first address, from the right, that is not a trusted proxy
itself. ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are taken from the proxy next to pushgate
(their last value). The socket's peer is kept in ``environ["pushgate.proxy"]``.

werkzeug's ``ProxyFix`` trusts a number of hops whoever sent them; this trusts addresses, so a
gateway reachable both through its proxy and directly cannot be fooled on the direct path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """WSGI middleware rewriting ``REMOTE_ADDR``, ``wsgi.url_scheme`` and ``HTTP_HOST``."""

    def __init__(self, app: Any, networks: Iterable[Network]) -> None:
        self.app = app
        self.networks = tuple(networks)

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        peer = environ.get("REMOTE_ADDR", "")
        if self.networks and self.trusted(peer):
            environ["pushgate.proxy"] = peer
            environ["REMOTE_ADDR"] = self.client(peer, environ.get("HTTP_X_FORWARDED_FOR", ""))
            proto = _last(environ.get("HTTP_X_FORWARDED_PROTO", "")).lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
            host = _last(environ.get("HTTP_X_FORWARDED_HOST", ""))
            if host:
                environ["HTTP_HOST"] = host
        return self.app(environ, start_response)

    def client(self, peer: str, forwarded_for: str) -> str:
        """The first address from the right of ``peer``'s ``X-Forwarded-For`` that is not a trusted
        proxy; ``peer`` itself when the header is empty or unreadable."""
        client = peer
        for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
            try:
                client = str(ipaddress.ip_address(hop))
            except ValueError:
                break  # garbage from further out: stop at the last address a trusted proxy wrote
            if not self.trusted(client):
                break
        return client


def _last(value: str) -> str:
    return value.rsplit(",", 1)[-1].strip()

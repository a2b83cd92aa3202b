"""Which address is the client's behind trusted proxies (gateway/proxies.py)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from gateway.proxies import TrustedProxies

NETWORKS = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]


def _seen(environ: dict[str, Any], networks: list[Any] = NETWORKS) -> dict[str, Any]:
    captured: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        captured.update(env)
        return []

    TrustedProxies(app, networks)({"wsgi.url_scheme": "http", "HTTP_HOST": "internal:8000", **environ}, None)
    return captured


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("10.0.0.5", "203.0.113.9", "203.0.113.9"),  # one proxy
        ("10.0.0.5", "198.51.100.1, 203.0.113.9, 10.1.2.3", "203.0.113.9"),  # two proxies; the client lied first
        ("10.0.0.5", "", "10.0.0.5"),  # nothing forwarded: the proxy itself
        ("10.0.0.5", "203.0.113.9, not-an-address", "10.0.0.5"),  # garbage next to us: believe no further
        ("::1", "2001:db8::7", "2001:db8::7"),
        ("203.0.113.50", "10.0.0.1", "203.0.113.50"),  # not a trusted proxy: its header is ignored
    ],
)
def test_the_client_is_the_first_untrusted_address_from_the_right(peer: str, forwarded: str, client: str) -> None:
    assert _seen({"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded})["REMOTE_ADDR"] == client


def test_scheme_and_host_come_from_the_nearest_trusted_proxy_only() -> None:
    headers = {"HTTP_X_FORWARDED_PROTO": "http, https", "HTTP_X_FORWARDED_HOST": "evil.example, push.example.com"}
    trusted = _seen({"REMOTE_ADDR": "10.0.0.5", **headers})
    assert (trusted["wsgi.url_scheme"], trusted["HTTP_HOST"], trusted["pushgate.proxy"]) == (
        "https",
        "push.example.com",
        "10.0.0.5",
    )
    direct = _seen({"REMOTE_ADDR": "203.0.113.50", **headers})
    assert (direct["wsgi.url_scheme"], direct["HTTP_HOST"]) == ("http", "internal:8000")
    assert _seen({"REMOTE_ADDR": "10.0.0.5", **headers}, networks=[])["REMOTE_ADDR"] == "10.0.0.5"

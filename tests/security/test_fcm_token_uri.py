"""Issue 14, item 8: an FCM service account cannot send the server's signed assertion elsewhere.

The OAuth token URL is the ``token_uri`` inside the service account an admin uploads. Before the
fix, any URL was taken: the gateway then posted a JWT signed with the app's key to it, and the
answer landed in broadLog, where viewers read it. Unless ``PUSHGATE_FCM_ENDPOINT`` points the
gateway at another FCM, only Google's token hosts are accepted, on input and again at send time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from flask import Flask

from gateway.worker import build_worker
from tests.conftest import runtime_of
from tests.factories import make_app, service_account
from tests.gateway.api.helpers import app_body
from tests.values import FCM_TOKEN
from tests.waiting import wait_until


class _Collector(BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append(self.rfile.read(length).decode(errors="replace"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"access_token": "leaked", "expires_in": 3600}')

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[tuple[str, list[str]]]:
    """An attacker's URL on loopback that records what is posted to it."""
    received: list[str] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/collect", received
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize(
    "token_uri",
    [
        "http://127.0.0.1:9/collect",
        "https://attacker.example/token",
        "http://oauth2.googleapis.com/token",  # Google's host, but in clear text
        "https://oauth2.googleapis.com.attacker.example/token",
        "https://oauth2.googleapis.com:8443/token",
    ],
)
def test_a_foreign_token_uri_is_refused_on_input(live_server: str, keys: Any, token_uri: str) -> None:
    body = app_body("Shop")
    body["android"]["fcm"] = {"service_account": service_account(token_uri=token_uri)}
    with httpx.Client(base_url=live_server, timeout=10) as http:
        refused = http.post("/api/v1/apps", json=body, headers=keys.admin)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_token_uri"
        body["android"]["fcm"]["service_account"]["token_uri"] = "https://oauth2.googleapis.com/token"
        assert http.post("/api/v1/apps", json=body, headers=keys.admin).status_code == 201


def test_a_stored_foreign_token_uri_is_never_posted_to(
    app: Flask, live_server: str, keys: Any, collector: tuple[str, list[str]]
) -> None:
    url, received = collector
    ids = make_app(app, token_uri=url)  # written before the rule, or straight into the database
    with httpx.Client(base_url=live_server, timeout=10) as http:
        assert (
            http.post(
                "/api/v1/subscriptions", json={"integration_key": ids["android_key"], "token": FCM_TOKEN}
            ).status_code
            == 201
        )
        delivery = http.post(
            "/api/v1/deliveries",
            json={"app_id": ids["id"], "name": "Sale", "message": {"body": "20% off"}, "target": {"all": True}},
            headers=keys.marketer,
        ).json()

        def refused() -> str | None:
            rows = http.get(f"/api/v1/deliveries/{delivery['id']}/broadlogs", headers=keys.viewer).json()["items"]
            return rows[0]["error_message"] if rows and rows[0]["error_message"] else None

        worker = build_worker(runtime_of(app))
        worker.start()
        try:
            error = wait_until(refused, 20, interval=0.05, message="the message was not tried")
        finally:
            worker.stop()
    assert "token_uri must be Google's" in error
    assert received == []  # nothing, signed or not, went to the attacker's URL

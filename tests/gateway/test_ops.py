"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient

from gateway.app import create_app
from tests.factories import make_app
from tests.values import FCM_TOKEN


def test_health_and_ready(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json["database"] == "ok"


def test_not_ready_when_not_migrated_and_api_answers_503(tmp_path: Path) -> None:
    app = create_app(overrides={"instance_path": tmp_path, "secret_key": Fernet.generate_key().decode()})
    client = app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "flask --app wsgi db upgrade" in response.json["database"]
    response = client.post(
        "/nms/mobile/1/registerAndroid.jssp",
        data=b"registrationToken=abc&mobileAppUuid=k",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 503 and response.json["error"] == "database_unavailable"


def _sample(text: str, prefix: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_registrations_and_tracking(app: Flask, client: FlaskClient) -> None:
    ids = make_app(app)
    before = client.get("/metrics").get_data(as_text=True)
    body = f"registrationToken={FCM_TOKEN}&mobileAppUuid={ids['android_key']}&userKey=".encode()
    client.post("/nms/mobile/1/registerAndroid.jssp", data=body, content_type="application/x-www-form-urlencoded")
    client.get("/r/?id=h1,1,1")
    after = client.get("/metrics").get_data(as_text=True)
    reg = 'pushgate_registrations_total{outcome="created",platform="android",sdk="campaign-classic"}'
    assert _sample(after, reg) == _sample(before, reg) + 1
    req = 'pushgate_http_requests_total{endpoint="/nms/mobile/1/registerAndroid.jssp",method="POST",status="200"}'
    assert _sample(after, req) == _sample(before, req) + 1
    assert "pushgate_http_request_duration_seconds_bucket" in after
    assert "pushgate_tracking_events_total" in after


def test_ready_but_degraded_while_a_running_delivery_is_stalled(app: Flask, client: FlaskClient) -> None:
    """200, not 503: every process shares the stall, and a load balancer would take them all out of
    rotation, registrations and tracking included, for one app's refused credentials."""
    from domain import delivery_status
    from store.models import Delivery
    from store.types import utcnow
    from tests.conftest import runtime_of

    ids = make_app(app)
    with runtime_of(app).sessions.begin() as session:
        delivery = Delivery(
            app_id=ids["id"], name="d", message={}, target={"all": True}, platforms=["ios"], status="running"
        )
        session.add(delivery)
        session.flush()
        delivery_status.note_stall(session, delivery.id, "ios", "the app has no APNs credentials", utcnow())
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json
    assert body is not None and body["status"] == "degraded" and body["database"] == "ok"
    assert body["deliveries"] == (
        "1 running delivery cannot send to a platform; their error says why (GET /api/v1/deliveries/{id})"
    )
    assert [(s["delivery_id"], s["platform"], s["reason"]) for s in body["stalled"]] == [
        (delivery.id, "ios", "the app has no APNs credentials")
    ]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "# TYPE pushgate_deliveries_stalled gauge" in metrics
    assert "# TYPE pushgate_provider_auth_failures_total counter" in metrics

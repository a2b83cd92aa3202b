"""Quarantine rules: hard errors at once, soft errors counted a day apart with a 10-day reset,
release after a later registration or by an operator."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from domain import quarantine
from domain.analysis import analyse
from domain.subscriptions import Registration, register
from gateway.runtime import runtime
from store.models import Delivery, Subscription
from store.types import utcnow
from tests.factories import make_app
from tests.values import fcm_token

POLICY = quarantine.Policy()
SOFT, GONE, BAD = fcm_token("soft"), fcm_token("gone"), fcm_token("bad")


def sessions(app: Flask) -> Any:
    with app.app_context():
        return runtime().sessions


def registered(app: Flask, app_id: int, token: str) -> None:
    with sessions(app).begin() as session:
        register(
            session,
            Registration(app_id=app_id, platform="android", token=token, sdk="native", push_provider="fcm"),
            reconciliation_field="external_id",
        )


def disabled(app: Flask, token: str) -> bool:
    with sessions(app)() as session:
        return bool(session.scalar(select(Subscription.disabled).where(Subscription.token == token)))


def test_soft_errors_quarantine_after_five_days_apart_and_reset_after_ten(app: Flask) -> None:
    ids = make_app(app)
    registered(app, ids["id"], SOFT)
    start = utcnow() - timedelta(days=30)
    with sessions(app).begin() as session:
        for hours in (0, 1, 2):  # the same day: counts once
            address = quarantine.record_soft_error(
                session,
                app_id=ids["id"],
                platform="android",
                token=SOFT,
                reason=1,
                text="x",
                policy=POLICY,
                now=start + timedelta(hours=hours),
            )
        assert (address.status, address.error_count) == ("with_errors", 1)
        address = quarantine.record_soft_error(
            session,
            app_id=ids["id"],
            platform="android",
            token=SOFT,
            reason=1,
            text="x",
            policy=POLICY,
            now=start + timedelta(days=12),
        )
        assert address.error_count == 1  # more than ten days without an error: the count restarted
        for day in (13, 14, 15, 16):
            address = quarantine.record_soft_error(
                session,
                app_id=ids["id"],
                platform="android",
                token=SOFT,
                reason=1,
                text="x",
                policy=POLICY,
                now=start + timedelta(days=day),
            )
        assert (address.status, address.error_count) == ("quarantine", 5)
    assert disabled(app, SOFT)


def test_hard_error_then_later_registration_releases(app: Flask, client: FlaskClient, keys: Any) -> None:
    ids = make_app(app)
    registered(app, ids["id"], GONE)
    with sessions(app).begin() as session:
        quarantine.record_hard_error(
            session,
            app_id=ids["id"],
            platform="android",
            token=GONE,
            reason=1,
            text="Unregistered",
            unregistered_at=utcnow(),
        )
    assert disabled(app, GONE)
    listed = client.get("/api/v1/quarantine?status=quarantine", headers=keys.viewer).json["items"]
    assert [a["address"] for a in listed] == [GONE]  # registered before the 410: stays
    registered(app, ids["id"], GONE)  # the app registers the token again, after the 410
    # Reading the quarantine changes nothing (a viewer's GET is no write) ...
    assert client.get("/api/v1/quarantine?status=quarantine", headers=keys.viewer).json["items"] == listed
    assert disabled(app, GONE)
    # ... the app's next delivery releases the token and targets it.
    delivery = client.post(
        "/api/v1/deliveries",
        json={"app_id": ids["id"], "name": "Back", "message": {"body": "Welcome back"}, "target": {"all": True}},
        headers=keys.marketer,
    ).json
    with sessions(app).begin() as session:
        assert analyse(session, session.get(Delivery, delivery["id"])) == 1
    assert client.get("/api/v1/quarantine?status=quarantine", headers=keys.viewer).json["items"] == []
    assert not disabled(app, GONE)


def test_operator_release(app: Flask, client: FlaskClient, keys: Any) -> None:
    ids = make_app(app)
    registered(app, ids["id"], BAD)
    with sessions(app).begin() as session:
        address = quarantine.record_hard_error(
            session, app_id=ids["id"], platform="android", token=BAD, reason=1, text="BadDeviceToken"
        )
        address_id = address.id
    assert client.delete(f"/api/v1/quarantine/{address_id}", headers=keys.viewer).status_code == 403
    assert client.delete(f"/api/v1/quarantine/{address_id}", headers=keys.marketer).status_code == 204
    assert not disabled(app, BAD)
    assert client.delete("/api/v1/quarantine/999999", headers=keys.marketer).status_code == 404

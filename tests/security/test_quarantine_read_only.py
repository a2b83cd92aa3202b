"""Issue 14, item 8: reading the quarantine changes nothing.

Before the fix ``GET /api/v1/quarantine`` released tokens as a side effect, so a viewer key (read
only by its role) changed which devices the next delivery reaches.
"""

from __future__ import annotations

from typing import Any

import httpx
from flask import Flask
from sqlalchemy import select

from domain.quarantine import record_hard_error
from domain.subscriptions import Registration, register
from store.models import Address, Subscription
from store.types import utcnow
from tests.conftest import runtime_of
from tests.factories import make_app
from tests.values import fcm_token

GONE = fcm_token("gone-then-back")


def _state(app: Flask) -> tuple[list[tuple[str, int]], list[bool]]:
    with runtime_of(app).sessions() as session:
        addresses = [(a.status, a.error_count) for a in session.scalars(select(Address))]
        disabled = [s.disabled for s in session.scalars(select(Subscription))]
    return addresses, disabled


def test_a_viewers_read_releases_nothing(app: Flask, live_server: str, keys: Any) -> None:
    ids = make_app(app)
    rt = runtime_of(app)
    registration = Registration(app_id=ids["id"], platform="android", token=GONE, sdk="native", push_provider="fcm")
    with rt.sessions.begin() as session:
        register(session, registration, reconciliation_field="external_id")
    with rt.sessions.begin() as session:
        record_hard_error(
            session, app_id=ids["id"], platform="android", token=GONE, reason=1, text="x", unregistered_at=utcnow()
        )
    with rt.sessions.begin() as session:  # registered again after APNs/FCM called it gone
        register(session, registration, reconciliation_field="external_id")
    before = _state(app)
    assert before == ([("quarantine", 1)], [True])
    with httpx.Client(base_url=live_server, timeout=10) as http:
        for _ in range(3):
            assert http.get("/api/v1/quarantine", headers=keys.viewer).status_code == 200
    assert _state(app) == before

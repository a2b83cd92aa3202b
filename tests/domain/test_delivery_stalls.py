"""Stalled platforms of running deliveries: recorded once, described in the delivery's error while it
runs, cleared by the first message that goes out, and turned into the final status and error."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from domain import delivery_status
from store.codes import BroadLogStatus, Channel, DeliveryStatus
from store.models import BroadLog, Delivery
from store.queries import deliveries as delivery_rows
from store.types import utcnow
from tests.conftest import runtime_of
from tests.factories import make_app

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=utcnow().tzinfo)
APNS = "APNs refused the app's credentials (403 InvalidProviderToken)"
FCM = "the app has no FCM credentials; add them to the app"


@pytest.fixture
def sessions(app: Flask) -> sessionmaker[Session]:
    return runtime_of(app).sessions  # type: ignore[no-any-return]


def delivery(app: Flask, status: DeliveryStatus = DeliveryStatus.RUNNING, sent: int = 0, app_id: int = 0) -> int:
    app_id = app_id or make_app(app)["id"]
    with runtime_of(app).sessions.begin() as session:
        row = Delivery(
            app_id=app_id, name="d", message={}, target={"all": True}, platforms=["ios", "android"], status=status
        )
        session.add(row)
        session.flush()
        for _ in range(sent):
            session.add(BroadLog(delivery_id=row.id, channel=int(Channel.IOS), status=int(BroadLogStatus.SENT)))
        return row.id


def error_of(sessions: sessionmaker[Session], delivery_id: int) -> tuple[str, str | None]:
    with sessions() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        return row.status, row.error


def test_a_stall_is_news_once_and_again_when_its_reason_changes(app: Flask, sessions: sessionmaker[Session]) -> None:
    delivery_id = delivery(app)
    with sessions.begin() as session:
        assert delivery_status.note_stall(session, delivery_id, "ios", APNS, NOW)
        assert not delivery_status.note_stall(session, delivery_id, "ios", APNS, NOW + timedelta(seconds=5))
        assert delivery_status.note_stall(session, delivery_id, "ios", "another reason", NOW + timedelta(seconds=9))
    with sessions() as session:
        (stall,) = delivery_status.stalls(session)
    assert (stall.delivery_id, stall.platform, stall.reason, stall.since) == (delivery_id, "ios", "another reason", NOW)


def test_the_error_describes_every_stalled_platform_until_each_goes_out_again(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    delivery_id = delivery(app)
    with sessions.begin() as session:
        delivery_status.note_stall(session, delivery_id, "ios", APNS, NOW)
        delivery_status.note_stall(session, delivery_id, "android", FCM, NOW + timedelta(minutes=1))
        error = delivery_status.describe_stalls(session, delivery_id)
    assert error == (
        f"android messages cannot be sent: {FCM}, since 2026-03-01 12:01:00 UTC; "
        f"ios messages cannot be sent: {APNS}, since 2026-03-01 12:00:00 UTC; "
        "they are retried until their attempts run out or the delivery expires"
    )
    assert error_of(sessions, delivery_id) == ("running", error)
    with sessions.begin() as session:
        connection = session.connection()
        assert delivery_rows.clear_stalls(connection, delivery_id, ["ios", "android"]) == ["android", "ios"]
        assert delivery_rows.clear_stalls(connection, delivery_id, ["ios"]) == []  # the usual case: nothing
        assert delivery_status.describe_stalls(session, delivery_id) is None
    assert error_of(sessions, delivery_id) == ("running", None)


def test_only_running_deliveries_count_as_stalled(app: Flask, sessions: sessionmaker[Session]) -> None:
    app_id = make_app(app)["id"]
    running, cancelled = delivery(app, app_id=app_id), delivery(app, DeliveryStatus.CANCELLED, app_id=app_id)
    with sessions.begin() as session:
        for delivery_id in (running, cancelled):
            delivery_status.note_stall(session, delivery_id, "ios", APNS, NOW)
        assert delivery_status.describe_stalls(session, cancelled) is None  # its error is its own
    with sessions() as session:
        assert delivery_status.stalled_count(session) == 1
        assert [s.delivery_id for s in delivery_status.stalls(session)] == [running]
    assert error_of(sessions, cancelled) == ("cancelled", None)


def test_a_delivery_that_ends_stalled_with_nothing_sent_fails(app: Flask, sessions: sessionmaker[Session]) -> None:
    delivery_id = delivery(app)
    with sessions.begin() as session:
        delivery_status.note_stall(session, delivery_id, "ios", APNS, NOW)
        status, error = delivery_status.finish(session, delivery_id, NOW)
    assert status is DeliveryStatus.FAILED and error == f"no message could be sent: ios: {APNS}"
    assert error_of(sessions, delivery_id) == ("failed", error)
    with sessions() as session:
        assert delivery_status.stalls(session) == []


def test_a_delivery_that_sent_something_completes_and_keeps_what_did_not_go(
    app: Flask, sessions: sessionmaker[Session]
) -> None:
    delivery_id = delivery(app, sent=1)
    with sessions.begin() as session:
        delivery_status.note_stall(session, delivery_id, "android", FCM, NOW)
        status, error = delivery_status.finish(session, delivery_id, NOW)
    assert status is DeliveryStatus.COMPLETED and error == f"android messages could not be sent: {FCM}"
    assert error_of(sessions, delivery_id) == ("completed", error)


def test_a_delivery_without_stalls_completes_as_before(app: Flask, sessions: sessionmaker[Session]) -> None:
    delivery_id = delivery(app)
    with sessions.begin() as session:
        assert delivery_status.finish(session, delivery_id, NOW) == (DeliveryStatus.COMPLETED, None)
        assert delivery_status.finish(session, delivery_id, NOW) == (None, None)  # over already
    assert error_of(sessions, delivery_id) == ("completed", None)

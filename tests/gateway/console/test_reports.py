"""The console's delivery report through Flask's test client: the page, its live counts (the API's),
the broadLog search and CSV, and Cancel by role."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from store.codes import BroadLogStatus, FailureReason, FailureType
from store.models import BroadLog, Delivery, Profile, TrackingLog
from tests.conftest import Keys, runtime_of
from tests.factories import make_app
from tests.gateway.console.conftest import ConsoleClient
from tests.values import apns_token, fcm_token

Console = Callable[[str], ConsoleClient]
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
SENT, FAILED, PENDING = int(BroadLogStatus.SENT), int(BroadLogStatus.FAILED), int(BroadLogStatus.PENDING)
GONE = apns_token("gone", "e4100000")


def make_delivery(app: Flask, status: str = "completed", **extra: Any) -> int:
    """A delivery by ada@example.com to alice: 4 Sent (2 received, 2 opened, 1 clicked), 1 Failed
    (token gone), and ``pending`` Pending messages."""
    pending = extra.pop("pending", 0)
    ids = make_app(app)
    with runtime_of(app).sessions.begin() as session:
        alice = Profile(external_id="alice")
        session.add(alice)
        delivery = Delivery(
            app_id=ids["id"],
            name="Spring sale",
            message={"title": "Hi {{ profile.first_name }}", "body": "20% off today"},
            target={"profiles": ["alice"]},
            platforms=["ios", "android"],
            status=status,
            created_by="ada@example.com",
            started_at=T0,
            ended_at=T0 + timedelta(minutes=2) if status == "completed" else None,
            **extra,
        )
        session.add(delivery)
        session.flush()
        sent = [
            BroadLog(
                delivery_id=delivery.id,
                channel=41 if n % 2 else 42,
                address=apns_token(f"ok-{n}") if n % 2 else fcm_token(f"ok-{n}"),
                profile_id=alice.id,
                status=SENT,
                attempts=1,
                event_date=T0 + timedelta(seconds=10 * n),
            )
            for n in range(4)
        ]
        failed = BroadLog(
            delivery_id=delivery.id,
            channel=41,
            address=GONE,
            profile_id=alice.id,
            status=FAILED,
            failure_type=int(FailureType.HARD),
            failure_reason=int(FailureReason.USER_UNKNOWN),
            error_message="Unregistered: 410",
            attempts=1,
            event_date=T0,
        )
        waiting = [
            BroadLog(delivery_id=delivery.id, channel=42, address=fcm_token(f"wait-{n}"), status=PENDING)
            for n in range(pending)
        ]
        session.add_all([*sent, failed, *waiting])
        session.flush()
        for row, interactions in zip(sent, (("received", "opened", "clicked"), ("received", "opened")), strict=False):
            for interaction in interactions:
                session.add(
                    TrackingLog(
                        broadlog_id=row.id,
                        delivery_id=delivery.id,
                        interaction=interaction,
                        source="campaign-classic",
                        log_date=T0 + timedelta(seconds=30),
                    )
                )
        return delivery.id


def test_the_report_shows_the_delivery_its_counts_rates_chart_and_failures(app: Flask, console_as: Console) -> None:
    delivery_id = make_delivery(app)
    page = console_as("viewer").get(f"/console/deliveries/{delivery_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for label in ("Targeted", "Sent", "Failed", "Received", "Opened", "Clicked", "Completed"):
        assert f">{label}<" in html, label
    assert "<dt>Pending</dt>" in html and 'data-optional="pending" hidden' in html  # none pending
    counts = dict(re.findall(r'data-count="(\w+)">([\d,]+)<', html))
    assert (counts["targeted"], counts["sent"], counts["failed"], counts["opened"], counts["clicked"]) == (
        "5",
        "4",
        "1",
        "2",
        "1",
    )
    rates = dict(re.findall(r'data-rate="(\w+)">([^<]+)<', html))
    assert rates == {"delivery": "80.0%", "open": "50.0%", "click": "25.0%"}
    assert "ada@example.com" in html and "Profiles: alice" in html and "iOS, Android" in html
    assert "Hi {{ profile.first_name }}" in html  # the template as written, escaped
    assert 'role="img"' in html and '<title id="chart-title">Sent and opened messages per second</title>' in html
    assert "The chart as a table" in html
    assert "User unknown <code>1</code>" in html and "Hard <code>1</code>" in html and "Unregistered: 410" in html
    assert "failure_type=1" in html and "failure_reason=1" in html and "data-finished" in html
    assert ">Cancel<" not in html  # finished, and a viewer


def test_the_live_counts_are_the_apis(app: Flask, console_as: Console, keys: Keys) -> None:
    delivery_id = make_delivery(app, status="running", pending=3)
    live = console_as("viewer").get(f"/console/deliveries/{delivery_id}/counts")
    api = app.test_client().get(f"/api/v1/deliveries/{delivery_id}", headers=keys.viewer).json
    assert live.status_code == 200 and live.headers["Cache-Control"] == "no-store"
    assert api is not None and live.json is not None
    assert live.json["counts"] == api["counts"]
    assert live.json["status"] == api["status"] == "running" and live.json["status_label"] == "Running"
    assert live.json["finished"] is False
    assert live.json["rate_text"] == {"delivery": "50.0%", "open": "50.0%", "click": "25.0%"}
    assert live.json["progress_text"] == "62.5%"


def test_the_csv_holds_every_message_in_id_order_with_formulas_defused(app: Flask, console_as: Console) -> None:
    delivery_id = make_delivery(app)
    with runtime_of(app).sessions.begin() as session:
        hostile = BroadLog(
            delivery_id=delivery_id,
            channel=42,
            address='=HYPERLINK("http://evil.example")',
            status=FAILED,
            failure_type=int(FailureType.SOFT),
            failure_reason=int(FailureReason.UNREACHABLE),
            error_message="+cmd|' /C calc'!A0",
            attempts=3,
        )
        session.add(hostile)
    response = console_as("viewer").get(f"/console/deliveries/{delivery_id}/broadlog.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="delivery-{delivery_id}-broadlog.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 6 and [int(r["id"]) for r in rows] == sorted(int(r["id"]) for r in rows)
    last = rows[-1]
    assert last["token"] == '\'=HYPERLINK("http://evil.example")' and last["error_message"].startswith("'+cmd")
    assert (last["status"], last["failure_type"], last["failure_reason_code"], last["channel"]) == (
        "failed",
        "soft",
        "3",
        "Android",
    )
    gone = next(r for r in rows if r["token"] == GONE)
    assert (gone["failure_reason"], gone["failure_reason_code"], gone["profile"]) == ("user_unknown", "1", "alice")


def test_the_broadlog_is_searched_by_status_token_profile_and_failure(app: Flask, console_as: Console) -> None:
    delivery_id = make_delivery(app)
    viewer = console_as("viewer")

    def tokens(query: str) -> list[str]:
        page = viewer.get(f"/console/deliveries/{delivery_id}/broadlogs?{query}")
        assert page.status_code == 200, page.get_data(as_text=True)
        return re.findall(r'data-token="([^"]*)"', page.get_data(as_text=True))

    assert len(tokens("")) == 5
    assert tokens("status=failed") == [GONE]
    assert tokens("token=e4100000") == [GONE] and tokens(f"token={GONE}&status=sent") == []
    assert tokens("failure_type=1&failure_reason=1&status=failed") == [GONE]
    assert len(tokens("profile=alice&status=sent")) == 4
    page = viewer.get(f"/console/deliveries/{delivery_id}/broadlogs?profile=bob").get_data(as_text=True)
    assert "No profile has the external id “bob”" in page
    refused = viewer.get(f"/console/deliveries/{delivery_id}/broadlogs?failure_type=99&token=abc")
    assert refused.status_code == 400
    assert "failure type: must be one of Campaign&#39;s codes: 1, 2, 3" in refused.get_data(as_text=True)
    assert 'value="abc"' in refused.get_data(as_text=True)  # kept as typed
    assert viewer.get(f"/console/deliveries/{delivery_id}/broadlogs?after=-4").status_code == 400
    assert viewer.get(f"/console/deliveries/{delivery_id}/broadlogs?token=" + "a" * 5000).status_code == 400


def test_search_pages_link_to_the_next_and_first_page(app: Flask, console_as: Console) -> None:
    delivery_id = make_delivery(app, pending=60)
    viewer = console_as("viewer")
    first = viewer.get(f"/console/deliveries/{delivery_id}/broadlogs?status=pending&order=id").get_data(as_text=True)
    assert first.count("data-token=") == 50
    next_url = re.search(r'href="([^"]+)">Next page', first)
    assert next_url is not None
    second = viewer.get(next_url.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert second.count("data-token=") == 10 and "Next page" not in second and "First page" in second
    seen = re.findall(r'data-token="([^"]*)"', first) + re.findall(r'data-token="([^"]*)"', second)
    assert len(set(seen)) == 60


def test_a_marketer_cancels_a_running_delivery_and_the_report_says_who(app: Flask, console_as: Console) -> None:
    delivery_id = make_delivery(app, status="running", pending=2)
    marketer = console_as("marketer")
    page = marketer.get(f"/console/deliveries/{delivery_id}").get_data(as_text=True)
    assert ">Cancel</button>" in page and "Its 2 pending messages will not be sent" in page
    response = marketer.post(f"/console/deliveries/{delivery_id}/cancel")
    assert response.status_code == 303 and response.headers["Location"] == f"/console/deliveries/{delivery_id}"
    page = marketer.get(f"/console/deliveries/{delivery_id}").get_data(as_text=True)
    assert "is cancelled" in page and "Cancelled by" in page and marketer.email in page
    assert 'data-count="cancelled">2<' in page and ">Cancel</button>" not in page
    with runtime_of(app).sessions() as session:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None and (delivery.status, delivery.cancelled_by) == ("cancelled", marketer.email)


def test_a_viewer_sees_no_cancel_and_may_not_post_one(app: Flask, console_as: Console) -> None:
    delivery_id = make_delivery(app, status="running", pending=1)
    viewer = console_as("viewer")
    assert ">Cancel</button>" not in viewer.get(f"/console/deliveries/{delivery_id}").get_data(as_text=True)
    assert viewer.post(f"/console/deliveries/{delivery_id}/cancel").status_code == 403
    with runtime_of(app).sessions() as session:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None and delivery.status == "running"


def test_cancelling_a_finished_delivery_is_a_409_page(app: Flask, console_as: Console) -> None:
    delivery_id = make_delivery(app)
    response = console_as("marketer").post(f"/console/deliveries/{delivery_id}/cancel")
    assert response.status_code == 409
    assert "a completed delivery cannot be cancelled" in response.get_data(as_text=True)
    with runtime_of(app).sessions() as session:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None and (delivery.status, delivery.cancelled_by) == ("completed", None)


@pytest.mark.parametrize("path", ["", "/counts", "/broadlogs", "/broadlog.csv"])
def test_an_unknown_delivery_is_a_404_page(console_as: Console, path: str) -> None:
    viewer = console_as("viewer")
    for delivery_id in (424242, 2**40, 2**63 - 1):
        response = viewer.get(f"/console/deliveries/{delivery_id}{path}")
        assert response.status_code == 404 and "text/html" in response.content_type
    assert console_as("marketer").post("/console/deliveries/424242/cancel").status_code == 404


def test_a_visitor_is_sent_to_sign_in(app: Flask) -> None:
    delivery_id = make_delivery(app)
    response = app.test_client().get(f"/console/deliveries/{delivery_id}/counts")
    assert response.status_code == 302 and "/console/sign-in" in response.headers["Location"]

"""Issue 14, item 4: public tracking URLs cannot inflate trackingLog or a delivery's rates.

Before the fix, 200 calls of one ``/r/`` URL made 200 trackingLog rows (each exported to the
Platform) and pushed the delivery to 100% opened; an Edge datastream's calls recorded tracking for
messages of any app.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from flask import Flask

from store.models import BroadLog
from tests.conftest import runtime_of
from tests.factories import make_app, make_sent_message, push_ids, tracking_rows
from tests.gateway.sdk.test_edge import envelope, tracking_event

CALLS = 200


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    # The repeats must reach the tracking rules: the rate limit would stop them first.
    return {**settings_overrides, "rate_limit_public": ""}


def _interactions(app: Flask) -> list[tuple[str, str | None]]:
    return [(r["interaction"], r["tag"]) for r in tracking_rows(app)]


def test_repeated_calls_record_one_receive_one_open_and_spaced_clicks(app: Flask, live_server: str, keys: Any) -> None:
    ids = make_app(app)
    broadlog_id, delivery_id = make_sent_message(app, ids["id"])
    classic = f"h{broadlog_id:x},{push_ids(app, broadlog_id, delivery_id, 'campaign-classic')[1]}"
    standard = ",".join(push_ids(app, broadlog_id, delivery_id, "campaign-standard"))
    with httpx.Client(base_url=live_server, timeout=10) as http:
        for _ in range(CALLS):
            for query in (f"id={classic},1", f"id={classic},2", f"id={standard},2&mcId=1", f"id={standard},3&mcId=1"):
                answer = http.get(f"/r/?{query}")
                assert (answer.status_code, answer.content) == (200, b"")
        counts = http.get(f"/api/v1/deliveries/{delivery_id}", headers=keys.viewer).json()["counts"]
    assert sorted(_interactions(app)) == [("clicked", "2"), ("clicked", "3"), ("opened", "2"), ("received", "1")]
    assert (counts["received"], counts["opened"], counts["clicked"]) == (1, 1, 1)


def test_edge_records_only_messages_of_the_datastreams_app(app: Flask, live_server: str) -> None:
    mine = make_app(app)
    other = make_app(app, name="Other", suffix="-other")
    broadlog_id, delivery_id = make_sent_message(app, mine["id"])
    mid, did = push_ids(app, broadlog_id, delivery_id, "edge")
    execution = {"messageExecutionID": mid, "messageID": did}
    body = envelope([tracking_event("pushTracking.applicationOpened", execution)])
    with httpx.Client(base_url=live_server, timeout=10) as http:
        through_other = http.post("/ee/v1/interact", params={"configId": other["edge_config"]}, json=body)
        assert through_other.status_code == 200
        assert tracking_rows(app) == []  # another app's datastream: nothing written
        for _ in range(3):
            http.post("/ee/v1/interact", params={"configId": mine["edge_config"]}, json=body)
    assert _interactions(app) == [("opened", "pushTracking.applicationOpened")]


def test_one_push_does_not_open_the_rest_of_its_delivery(app: Flask, live_server: str) -> None:
    """An attacker receives one push of a delivery (its own device) and walks the sequential ids."""
    ids = make_app(app)
    mine, delivery_id = make_sent_message(app, ids["id"])
    with runtime_of(app).sessions.begin() as session:  # the delivery's other messages, Sent too
        mine_row = session.get(BroadLog, mine)
        assert mine_row is not None
        others = [
            BroadLog(delivery_id=delivery_id, channel=mine_row.channel, status=mine_row.status, attempts=1)
            for _ in range(20)
        ]
        session.add_all(others)
        session.flush()
        other_ids = [row.id for row in others]
    _mid, my_did = push_ids(app, mine, delivery_id)
    with httpx.Client(base_url=live_server, timeout=10) as http:
        for other in other_ids:
            for did in (f"{delivery_id:x}", my_did):  # without a signature, and with its own
                assert http.get(f"/r/?id=h{other:x},{did},2").status_code == 200
        assert http.get(f"/r/?id=h{mine:x},{my_did},2").status_code == 200
    assert [(r["broadlog_id"], r["interaction"]) for r in tracking_rows(app)] == [(mine, "opened")]

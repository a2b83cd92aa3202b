"""What every list of API v1 shares: ``sort`` (creation order either way; deliveries and sync runs
newest first), cursors that keep their order, and ``failure_reason`` shown alike in broadLog and
quarantine."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.api.schemas import BroadLogPage, QuarantinePage, SyncRunPage
from store.codes import FailureReason, FailureType
from store.models import Address, BroadLog, SyncRun
from sync.runs import open_run
from tests.conftest import Keys, runtime_of
from tests.factories import make_app, make_profile, make_sent_message
from tests.gateway.api.helpers import walk

CREATION = ["created_at", "-created_at", "id", "-id"]


def ids(client: FlaskClient, url: str, headers: dict[str, str], limit: int = 2) -> list[int]:
    return [item["id"] for page in walk(client, url, headers, limit) for item in page]


@pytest.fixture
def five_deliveries(app: Flask, client: FlaskClient, keys: Keys) -> list[int]:
    app_id = make_app(app)["id"]
    body: dict[str, Any] = {"app_id": app_id, "target": {"all": True}, "message": {"title": "t", "body": "b"}}
    made = [client.post("/api/v1/deliveries", json={**body, "name": f"d{n}"}, headers=keys.marketer) for n in range(5)]
    assert [answer.status_code for answer in made] == [201] * 5
    return [answer.json["id"] for answer in made]


def test_deliveries_are_newest_first_unless_sorted_otherwise(
    client: FlaskClient, keys: Keys, five_deliveries: list[int]
) -> None:
    oldest_first = sorted(five_deliveries)
    newest_first = oldest_first[::-1]
    assert ids(client, "/api/v1/deliveries", keys.viewer) == newest_first
    for sort, expected in [
        ("-created_at", newest_first),
        ("created_at", oldest_first),
        ("id", oldest_first),
        ("-id", newest_first),
    ]:
        assert ids(client, f"/api/v1/deliveries?sort={sort}", keys.viewer) == expected, sort
        assert ids(client, f"/api/v1/deliveries?sort={sort}", keys.viewer, limit=50) == expected, sort
    listed = client.get("/api/v1/deliveries?sort=created_at", headers=keys.viewer).json["items"]
    times = [item["created_at"] for item in listed]
    assert times == sorted(times)  # what the id order stands for


def test_a_cursor_goes_on_in_its_own_order(client: FlaskClient, keys: Keys, five_deliveries: list[int]) -> None:
    first = client.get("/api/v1/deliveries?sort=created_at&limit=2", headers=keys.viewer).json
    cursor = first["next_cursor"]
    rest = client.get(f"/api/v1/deliveries?cursor={cursor}&limit=10", headers=keys.viewer).json
    assert [d["id"] for d in first["items"] + rest["items"]] == sorted(five_deliveries)
    crossed = client.get(f"/api/v1/deliveries?cursor={cursor}&sort=-created_at", headers=keys.viewer)
    assert (crossed.status_code, crossed.json["error"]) == (400, "invalid_cursor")
    assert "sort=-created_at" in crossed.json["message"]
    # A cursor made before sorting existed: ascending, as every list then was.
    old = base64.urlsafe_b64encode(f"v1:{sorted(five_deliveries)[1]}".encode()).decode().rstrip("=")
    after_old = client.get(f"/api/v1/deliveries?cursor={old}", headers=keys.viewer).json["items"]
    assert [d["id"] for d in after_old] == sorted(five_deliveries)[2:]


def test_an_unknown_sort_is_a_400_naming_the_values_allowed(client: FlaskClient, keys: Keys) -> None:
    answer = client.get("/api/v1/deliveries?sort=name", headers=keys.viewer)
    assert (answer.status_code, answer.json["error"]) == (400, "invalid_query")
    assert answer.json["message"] == "query parameter sort must be one of created_at, -created_at, id, -id"


def test_sync_runs_are_newest_first_and_take_started_at(app: Flask, client: FlaskClient, keys: Keys) -> None:
    sessions = runtime_of(app).sessions
    made = [open_run(sessions, "segments", "cli") for _ in range(3)]
    with sessions() as session:
        started = [session.get(SyncRun, run_id).started_at for run_id in made]  # type: ignore[union-attr]
    assert started == sorted(started)
    page = SyncRunPage.model_validate(client.get("/api/v1/sync/runs", headers=keys.admin).json)
    assert [run.id for run in page.items] == made[::-1]
    for sort in ("started_at", "created_at", "id"):
        assert ids(client, f"/api/v1/sync/runs?sort={sort}", keys.admin) == made
        assert ids(client, f"/api/v1/sync/runs?sort=-{sort}", keys.admin) == made[::-1]


@pytest.mark.parametrize(
    ("path", "values", "role"),
    [
        ("/api/v1/apps", CREATION, "viewer"),
        ("/api/v1/profiles", CREATION, "viewer"),
        ("/api/v1/apps/{app}/subscriptions", CREATION, "viewer"),
        ("/api/v1/quarantine", CREATION, "viewer"),
        ("/api/v1/audiences", CREATION, "viewer"),
        ("/api/v1/keys", CREATION, "admin"),
        ("/api/v1/deliveries", CREATION, "viewer"),
        (
            "/api/v1/sync/runs",
            ["started_at", "-started_at", "created_at", "-created_at", "id", "-id"],
            "admin",
        ),
        ("/api/v1/deliveries/{delivery}/broadlogs", ["id", "-id"], "viewer"),
    ],
)
def test_every_list_takes_its_sorts_and_declares_them(
    app: Flask, client: FlaskClient, keys: Keys, path: str, values: list[str], role: str
) -> None:
    app_id = make_app(app)["id"]
    _broadlog, delivery_id = make_sent_message(app, app_id)
    url = path.format(app=app_id, delivery=delivery_id)
    for value in values:
        assert client.get(f"{url}?sort={value}", headers=keys(role)).status_code == 200, value
    refused = client.get(f"{url}?sort=nonsense", headers=keys(role)).json
    assert refused["message"] == f"query parameter sort must be one of {', '.join(values)}"
    document = client.get("/api/v1/openapi.json").json
    template = path.replace("{app}", "{app_id}").replace("{delivery}", "{delivery_id}")
    (sort,) = [p for p in document["paths"][template]["get"]["parameters"] if p["name"] == "sort"]
    assert sort["schema"] == {"type": "string", "enum": values}


def test_profiles_walk_both_ways_without_gaps_or_repeats(app: Flask, client: FlaskClient, keys: Keys) -> None:
    made = [make_profile(app, f"CRM-{n:06d}") for n in range(7)]
    assert ids(client, "/api/v1/profiles", keys.viewer, limit=3) == made
    assert ids(client, "/api/v1/profiles?sort=-created_at", keys.viewer, limit=3) == made[::-1]


def test_broadlog_and_quarantine_show_a_failure_reason_alike(app: Flask, client: FlaskClient, keys: Keys) -> None:
    app_id = make_app(app)["id"]
    broadlog_id, delivery_id = make_sent_message(app, app_id, status=2)
    with runtime_of(app).sessions.begin() as session:
        row = session.get(BroadLog, broadlog_id)
        assert row is not None
        row.failure_type, row.failure_reason = int(FailureType.HARD), int(FailureReason.USER_UNKNOWN)
        session.add(
            Address(
                app_id=app_id,
                platform="android",
                address=row.address,
                status="quarantine",
                error_count=1,
                failure_reason=int(FailureReason.USER_UNKNOWN),
            )
        )
    logs = BroadLogPage.model_validate(
        client.get(f"/api/v1/deliveries/{delivery_id}/broadlogs", headers=keys.viewer).json
    )
    quarantined = QuarantinePage.model_validate(client.get("/api/v1/quarantine", headers=keys.viewer).json)
    shown = {(item.failure_reason, item.failure_reason_code) for item in [*logs.items, *quarantined.items]}
    assert shown == {("user_unknown", 1)}

"""The console's deliveries pages through Flask's test client: the list and its filters, the New
delivery form (inline errors, preview, proof, confirmation count, creation), roles and CSRF."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from domain import analysis
from domain.analysis import analyse
from store.codes import BroadLogStatus
from store.models import Address, BroadLog, Delivery
from store.types import utcnow
from tests.conftest import runtime_of
from tests.gateway.console.delivery_world import (
    Console,
    add_subscription,
    add_test_device,
    build_world,
    compose,
    deliveries_of,
    error_of,
    text,
)
from tests.values import apns_token, crm_id


@pytest.fixture
def world(app: Flask) -> dict[str, Any]:
    return build_world(app)


# -- the list ---------------------------------------------------------------------------------


def test_the_list_shows_deliveries_newest_first_without_proofs_unless_asked(
    app: Flask, console_as: Console, world: dict[str, Any]
) -> None:
    marketer = console_as("marketer")
    for name in ("First", "Second"):
        page = marketer.post("/console/deliveries/new", compose(world, name=name, action="send"))
        key = re.search(r'name="idempotency_key" value="([^"]+)"', text(page))
        assert key
        marketer.post(
            "/console/deliveries/new",
            compose(world, name=name, action="confirm", kind="send", idempotency_key=key.group(1)),
        )
    add_test_device(app, world["app"], world["subs"]["ada_ios"], "Ada's iPhone")
    marketer.post(
        "/console/deliveries/new",
        compose(world, name="Tried", action="proof", test_devices=[str(world["subs"]["ada_ios"])]),
    )
    viewer = console_as("viewer")
    listing = text(viewer.get("/console/deliveries/"))
    assert listing.index("Second") < listing.index("First")
    assert "Proof: Tried" not in listing
    assert "Audience: Gold" in listing and marketer.email in listing
    assert 'aria-label="Progress of' in listing or "Starting" in listing
    assert "New delivery" not in listing  # a viewer cannot create one
    assert "Proof: Tried" in text(viewer.get("/console/deliveries/?proofs=1"))
    assert "No delivery matches" in text(viewer.get("/console/deliveries/?status=cancelled"))
    assert "First" not in text(viewer.get(f"/console/deliveries/?app_id={world['other']}"))
    assert viewer.get("/console/deliveries/?status=nonsense").status_code == 400
    assert viewer.get("/console/deliveries/?app_id=99999999999999999999").status_code == 400
    assert viewer.get("/console/deliveries/?before=%C2%B2").status_code == 400
    assert "New delivery" in text(marketer.get("/console/deliveries/"))


def test_the_list_pages_newest_first(app: Flask, console_as: Console, world: dict[str, Any]) -> None:
    with runtime_of(app).sessions.begin() as session:
        for n in range(30):
            delivery = Delivery(app_id=world["app"], name=f"D{n:02d}", message={"title": "t"}, target={"all": True})
            session.add(delivery)
            delivery.platforms, delivery.status = ["ios"], "completed"
    viewer = console_as("viewer")
    first = text(viewer.get("/console/deliveries/"))
    assert "D29" in first and "D05" in first and "D04" not in first
    next_url = re.search(r'href="([^"]*before=\d+[^"]*)">Next page', first)
    assert next_url
    second = text(viewer.get(next_url.group(1).replace("&amp;", "&")))
    assert "D04" in second and "D00" in second and "D05" not in second and "Next page" not in second


# -- roles and CSRF ---------------------------------------------------------------------------


def test_a_viewer_cannot_compose_preview_send_or_keep_test_devices(console_as: Console, world: dict[str, Any]) -> None:
    viewer = console_as("viewer")
    assert viewer.get("/console/deliveries/new").status_code == 403
    for action in ("preview", "proof", "send", "schedule", "confirm"):
        assert viewer.post("/console/deliveries/new", compose(world, action=action)).status_code == 403
    assert viewer.post("/console/deliveries/preview", compose(world)).status_code == 403
    page = viewer.get(f"/console/deliveries/test-devices?app_id={world['app']}")
    assert page.status_code == 200 and "Add a test device" not in text(page)
    added = viewer.post(
        "/console/deliveries/test-devices",
        {"app_id": world["app"], "by": "subscription", "value": world["subs"]["ada_ios"], "label": "x"},
    )
    assert added.status_code == 403


def test_a_post_without_the_csrf_token_is_refused(app: Flask, console_as: Console, world: dict[str, Any]) -> None:
    marketer = console_as("marketer")
    response = marketer.client.post("/console/deliveries/new", data=compose(world, action="confirm", kind="send"))
    assert response.status_code == 400 and "CSRF" in text(response)
    assert marketer.client.post("/console/deliveries/preview", data=compose(world)).status_code == 400
    assert deliveries_of(app) == []


# -- the form: errors, preview ------------------------------------------------------------------


def test_form_errors_are_shown_next_to_their_fields_with_the_values_kept(
    console_as: Console, world: dict[str, Any]
) -> None:
    marketer = console_as("marketer")
    form = compose(
        world,
        name="",
        target=None,
        image_url="http://insecure.example.com/a.png",
        badge="many",
        data="offer=A1\nno equals sign",
        action_1_id="has space",
        action_1_title="Open",
        action="send",
    )
    response = marketer.post("/console/deliveries/new", form)
    page = text(response)
    assert response.status_code == 400
    assert error_of(page, "target") == "choose who to send to"
    assert error_of(page, "name")
    assert error_of(page, "image_url") == "must be an https:// URL without spaces"
    assert "valid integer" in error_of(page, "badge")
    assert error_of(page, "data") == "line 2: write key=value"
    assert "pattern" in error_of(page, "action_1_id")
    assert 'value="http://insecure.example.com/a.png"' in page and "no equals sign</textarea>" in page
    assert 'value="Hello {{ profile.first_name }}"' in page


def test_a_template_error_is_shown_on_its_field(console_as: Console, world: dict[str, Any]) -> None:
    marketer = console_as("marketer")
    response = marketer.post(
        "/console/deliveries/new", compose(world, title="Hello {{ profile.first_name", action="send")
    )
    assert response.status_code == 400
    assert "unexpected end of template" in error_of(text(response), "title")
    live = marketer.post("/console/deliveries/preview", compose(world, title="Hi {% if %}"))
    assert live.status_code == 400 and live.json is not None
    assert set(live.json["errors"]) == {"title"} and live.json["error"] == "invalid_message"
    no_text = marketer.post("/console/deliveries/preview", compose(world, title="", body=""))
    assert no_text.status_code == 400 and no_text.json is not None
    assert "needs a title or a body" in no_text.json["errors"]["title"]


def test_preview_renders_for_a_profile_on_both_mockups(console_as: Console, world: dict[str, Any]) -> None:
    marketer = console_as("marketer")
    form = compose(world, subtitle="Just for you", preview_profile=crm_id(1), image_url="https://cdn.example.com/s.png")
    page = marketer.post("/console/deliveries/new", {**form, "action": "preview"})
    shown = text(page)
    assert page.status_code == 200
    assert shown.count('<p class="mock-title">Hello Ada</p>') == 2
    assert "iOS notification preview" in shown and "Android notification preview" in shown
    assert re.search(r'<meter id="size-meter"[^>]*value="[1-9]\d*"', shown)
    live = marketer.post("/console/deliveries/preview", form)
    assert live.status_code == 200 and live.json is not None
    assert live.json["platforms"]["ios"]["rendered"]["title"] == "Hello Ada"
    assert live.json["platforms"]["ios"]["payload"]["aps"]["alert"]["subtitle"] == "Just for you"
    assert 0 < live.json["largest"]["size"] <= live.json["limit"] == 4096
    assert "Hello Ada" in live.json["html"]
    unknown = marketer.post("/console/deliveries/preview", {**form, "preview_profile": "nobody"})
    assert unknown.status_code == 400 and unknown.json is not None and "preview_profile" in unknown.json["errors"]


def test_a_payload_too_large_is_refused_before_the_confirmation(console_as: Console, world: dict[str, Any]) -> None:
    marketer = console_as("marketer")
    data = "\n".join(f"key{n}={'x' * 200}" for n in range(30))
    response = marketer.post("/console/deliveries/new", compose(world, data=data, action="send"))
    assert response.status_code == 400
    assert "4096" in text(response) or "too large" in text(response)


# -- confirmation and creation ------------------------------------------------------------------


def test_the_confirmation_counts_only_the_devices_the_delivery_will_reach(
    app: Flask, console_as: Console, world: dict[str, Any]
) -> None:
    marketer = console_as("marketer")
    page = text(marketer.post("/console/deliveries/new", compose(world, action="send")))
    # Ada's 2 and Grace's iOS: not Grace's quarantined or disabled ones, not Linus (exited), not
    # the profile without consent, not the other app's subscription.
    assert "This delivery will reach 3 devices (2 iOS, 1 Android)." in page
    ios_only = text(marketer.post("/console/deliveries/new", compose(world, platforms=["ios"], action="send")))
    assert "This delivery will reach 2 devices (2 iOS)." in ios_only
    everyone = text(marketer.post("/console/deliveries/new", compose(world, target="all", action="send")))
    assert "This delivery will reach 4 devices (3 iOS, 1 Android)." in everyone  # + Linus
    # The count is what analysis then writes Pending.
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert key
    marketer.post(
        "/console/deliveries/new", compose(world, action="confirm", kind="send", idempotency_key=key.group(1))
    )
    with runtime_of(app).sessions.begin() as session:
        delivery = session.scalars(select(Delivery)).one()
        analyse(session, delivery)
        pending = session.scalar(
            select(func.count()).where(BroadLog.delivery_id == delivery.id, BroadLog.status == BroadLogStatus.PENDING)
        )
    assert pending == 3


def test_confirming_creates_the_delivery_as_the_user_once_and_goes_to_its_report(
    app: Flask, console_as: Console, world: dict[str, Any]
) -> None:
    marketer = console_as("marketer")
    page = text(marketer.post("/console/deliveries/new", compose(world, action="send", rate_per_second="50")))
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert key and "Confirm and send" in page
    form = compose(world, action="confirm", kind="send", rate_per_second="50", idempotency_key=key.group(1))
    response = marketer.post("/console/deliveries/new", form)
    assert response.status_code == 303
    (stored,) = deliveries_of(app)
    assert response.headers["Location"] == f"/console/deliveries/{stored['id']}"
    assert stored["created_by"] == marketer.email and not stored["proof"]
    assert stored["target"] == {"audience": world["audience"]} and stored["platforms"] == ["android", "ios"]
    assert stored["message"] == {"title": "Hello {{ profile.first_name }}", "body": "Our spring sale starts today."}
    again = marketer.post("/console/deliveries/new", form)  # pressed twice: the same delivery
    assert again.status_code == 303 and again.headers["Location"] == response.headers["Location"]
    assert len(deliveries_of(app)) == 1


def test_schedule_needs_a_time_in_the_future_and_send_none(
    app: Flask, console_as: Console, world: dict[str, Any]
) -> None:
    marketer = console_as("marketer")
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    later = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
    response = marketer.post("/console/deliveries/new", compose(world, action="schedule", schedule_at=past))
    assert response.status_code == 400 and error_of(text(response), "schedule_at") == "must be in the future"
    missing = marketer.post("/console/deliveries/new", compose(world, action="schedule"))
    assert "give the date and time" in error_of(text(missing), "schedule_at")
    garbage = marketer.post("/console/deliveries/new", compose(world, action="schedule", schedule_at="soon"))
    assert garbage.status_code == 400 and "such as" in error_of(text(garbage), "schedule_at")
    sent_now = marketer.post("/console/deliveries/new", compose(world, action="send", schedule_at=past))
    assert sent_now.status_code == 400 and "clear Schedule" in error_of(text(sent_now), "schedule_at")
    stamp = later.strftime("%Y-%m-%dT%H:%M")
    page = text(marketer.post("/console/deliveries/new", compose(world, action="schedule", schedule_at=stamp)))
    assert "Confirm and schedule" in page
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert key
    form = compose(world, action="confirm", kind="schedule", schedule_at=stamp, idempotency_key=key.group(1))
    assert marketer.post("/console/deliveries/new", form).status_code == 303
    assert deliveries_of(app)[0]["schedule_at"] == later


def test_targets_by_profiles_and_by_test_devices(app: Flask, console_as: Console, world: dict[str, Any]) -> None:
    marketer = console_as("marketer")
    profiles = text(
        marketer.post(
            "/console/deliveries/new",
            compose(world, target="profiles", profiles=f"{crm_id(1)}\n\n{crm_id(3)}\n{crm_id(1)}", action="send"),
        )
    )
    assert "This delivery will reach 3 devices (2 iOS, 1 Android)." in profiles
    add_test_device(app, world["app"], world["subs"]["grace_ios"], "Grace's iPhone")
    devices = compose(world, target="test_devices", test_devices=[str(world["subs"]["grace_ios"])], action="send")
    assert "This delivery will reach 1 device (1 iOS, 0 Android)." in text(
        marketer.post("/console/deliveries/new", devices)
    )
    foreign = compose(world, target="test_devices", test_devices=[str(world["subs"]["other_app"])], action="send")
    response = marketer.post("/console/deliveries/new", foreign)
    assert response.status_code == 400 and "test devices of the chosen app" in error_of(text(response), "test_devices")
    gone = marketer.post("/console/deliveries/new", compose(world, audience_id="999999", action="send"))
    assert gone.status_code == 400 and "no audience" in error_of(text(gone), "audience_id")


# -- proofs -------------------------------------------------------------------------------------


def test_send_proof_creates_a_proof_to_the_chosen_test_devices(
    app: Flask, console_as: Console, world: dict[str, Any]
) -> None:
    marketer = console_as("marketer")
    add_test_device(app, world["app"], world["subs"]["ada_ios"], "Ada's iPhone")
    add_test_device(app, world["app"], world["subs"]["ada_android"], "Ada's Pixel")
    none = marketer.post("/console/deliveries/new", compose(world, action="proof"))
    assert none.status_code == 400 and "at least one test device" in error_of(text(none), "test_devices")
    chosen = [str(world["subs"]["ada_ios"]), str(world["subs"]["ada_android"])]
    page = marketer.post("/console/deliveries/new", compose(world, action="proof", test_devices=chosen))
    assert page.status_code == 200 and "Proof outcome" in text(page) and 'value="Spring sale"' in text(page)
    (proof,) = deliveries_of(app)
    assert proof["proof"] and proof["name"] == "Proof: Spring sale" and proof["created_by"] == marketer.email
    assert proof["target"] == {"subscriptions": [world["subs"]["ada_ios"], world["subs"]["ada_android"]]}
    as_json = marketer.post(
        "/console/deliveries/new",
        compose(world, action="proof", test_devices=chosen[:1]),
        headers={"Accept": "application/json"},
    )
    assert as_json.status_code == 200 and as_json.json is not None
    assert as_json.json["url"] == f"/console/deliveries/proofs/{as_json.json['id']}"
    with runtime_of(app).sessions.begin() as session:
        analyse(session, session.get_one(Delivery, as_json.json["id"]))
    fragment = text(marketer.get(f"{as_json.json['url']}?fragment=1"))
    assert "Ada&#39;s iPhone" in fragment and "Pending" in fragment and 'data-done="false"' in fragment
    assert console_as("viewer").get(as_json.json["url"]).status_code == 200
    assert marketer.get("/console/deliveries/proofs/999999").status_code == 404


@pytest.mark.parametrize(
    ("fields", "field", "expected"),
    [
        ({"name": "n" * 5000}, "name", "at most 200 characters"),
        ({"title": "t" * 100_000}, "title", "at most 1024"),
        ({"app_id": "99999999999999999999999"}, "app_id", "less than or equal"),
        ({"app_id": "abc"}, "app_id", "valid integer"),
        ({"audience_id": "2147483648"}, "audience_id", "choose an audience"),
        ({"audience_id": "\u00b2"}, "audience_id", "choose an audience"),
        ({"test_devices": ["\u00b2"], "target": "test_devices"}, "test_devices", "chosen app"),
        ({"rate_per_second": "1e999"}, "rate_per_second", "less than or equal"),
        ({"rate_per_second": "nan"}, "rate_per_second", ""),
        ({"schedule_at": "99999-01-01T00:00"}, "schedule_at", "such as"),
        ({"badge": "-1"}, "badge", "greater than or equal"),
        ({"ttl_seconds": "9" * 30}, "ttl_seconds", "less than or equal"),
        ({"priority": "urgent"}, "priority", "'high' or 'normal'"),
        ({"platforms": ["windows"]}, "platforms", "'ios' or 'android'"),
        ({"sound": "bad sound"}, "sound", "pattern"),
        ({"data": "aps=1"}, "data", "reserved"),
        ({"title": "a\x00b"}, "title", "control characters"),
        ({"test_devices": ["1; drop"], "target": "test_devices"}, "test_devices", "chosen app"),
        ({"profiles": "\n".join(f"p{n}" for n in range(10_001)), "target": "profiles"}, "profiles", "at most 10000"),
    ],
)
def test_hostile_values_are_inline_errors_never_a_500(
    app: Flask, console_as: Console, world: dict[str, Any], fields: dict[str, Any], field: str, expected: str
) -> None:
    marketer = console_as("marketer")
    action = "schedule" if field == "schedule_at" else "send"
    response = marketer.post("/console/deliveries/new", compose(world, action=action, **fields))
    assert response.status_code == 400, text(response)[-2000:]
    assert expected in error_of(text(response), field) and error_of(text(response), field)
    assert deliveries_of(app) == []


def test_the_count_is_what_analysis_writes_pending_also_for_a_quarantine_it_lifts(
    app: Flask, world: dict[str, Any]
) -> None:
    """A token APNs called unregistered and the app registered again since: analysis releases it
    first, so the confirmation counts it."""
    token = apns_token("came-back")
    add_subscription(app, world["app"], "ios", token, disabled=True)
    with runtime_of(app).sessions.begin() as session:
        session.add(
            Address(
                app_id=world["app"],
                platform="ios",
                address=token,
                status="quarantine",
                error_count=1,
                unregistered_at=utcnow() - timedelta(days=1),
            )
        )
    with runtime_of(app).sessions.begin() as session:
        counted = analysis.reach(session, world["app"], {"all": True}, ["ios", "android"])
        delivery = Delivery(app_id=world["app"], name="All", message={"title": "t"}, target={"all": True})
        delivery.platforms = ["android", "ios"]
        session.add(delivery)
        session.flush()
        analyse(session, delivery)
        pending = dict(
            session.execute(
                select(BroadLog.channel, func.count())
                .where(BroadLog.delivery_id == delivery.id, BroadLog.status == BroadLogStatus.PENDING)
                .group_by(BroadLog.channel)
            ).all()
        )
    assert counted == {"ios": pending.get(41, 0), "android": pending.get(42, 0)} == {"ios": 4, "android": 1}

"""The console's test devices pages through Flask's test client: adding by subscription id, push
token or profile, removing, and the refusals of what cannot receive a proof."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from store.models import TestDevice
from tests.conftest import runtime_of
from tests.gateway.console.delivery_world import Console, add_test_device, build_world, text
from tests.values import apns_token, crm_id


@pytest.fixture
def world(app: Flask) -> dict[str, Any]:
    return build_world(app)


def test_test_devices_are_added_by_id_token_or_profile_and_removed(
    app: Flask, console_as: Console, world: dict[str, Any]
) -> None:
    marketer = console_as("marketer")
    url = "/console/deliveries/test-devices"
    app_id, subs = world["app"], world["subs"]
    by_id = marketer.post(
        url, {"app_id": app_id, "by": "subscription", "value": subs["ada_ios"], "label": "Ada's iPhone"}
    )
    assert by_id.status_code == 303 and by_id.headers["Location"] == f"{url}?app_id={app_id}"
    by_token = marketer.post(
        url, {"app_id": app_id, "by": "token", "value": apns_token("grace").upper(), "label": "Grace's iPhone"}
    )
    assert by_token.status_code == 303
    by_profile = marketer.post(url, {"app_id": app_id, "by": "profile", "value": crm_id(3), "label": "Linus"})
    assert by_profile.status_code == 303
    listing = text(marketer.get(f"{url}?app_id={app_id}"))
    assert "Ada&#39;s iPhone" in listing and "Grace&#39;s iPhone" in listing and "Linus" in listing
    assert crm_id(1) in listing and apns_token("ada")[:10] in listing
    with runtime_of(app).sessions() as session:
        device_id = session.scalars(select(TestDevice.id).where(TestDevice.label == "Linus")).one()
    removed = marketer.post(f"{url}/{device_id}/remove", {"app_id": app_id})
    assert removed.status_code == 303 and "Linus" not in text(marketer.get(f"{url}?app_id={app_id}"))
    assert marketer.post(f"{url}/{device_id}/remove", {"app_id": app_id}).status_code == 404


@pytest.mark.parametrize(
    ("sub", "by", "expected"),
    [
        ("other_app", "subscription", "belongs to another app"),
        ("unknown", "subscription", "no subscription with id 987654"),
        ("grace_ios_disabled", "subscription", "is disabled"),
        ("grace_android_quarantined", "subscription", "in quarantine"),
        ("ada_ios", "subscription", "already the test device"),
        ("nobody", "profile", "no subscription of that profile"),
        ("garbage", "subscription", "is not a subscription id"),
        ("superscript", "subscription", "is not a subscription id"),
        ("empty", "token", "give a subscription id"),
    ],
)
def test_test_devices_refuse_what_cannot_receive_a_proof(
    app: Flask, console_as: Console, world: dict[str, Any], sub: str, by: str, expected: str
) -> None:
    marketer = console_as("marketer")
    add_test_device(app, world["app"], world["subs"]["ada_ios"], "Ada's iPhone")
    value = {
        "unknown": "987654",
        "nobody": "CRM-999999",
        "garbage": "12abc",
        "superscript": "\u00b2",
        "empty": " ",
    }.get(sub) or world["subs"][sub]
    response = marketer.post(
        "/console/deliveries/test-devices", {"app_id": world["app"], "by": by, "value": value, "label": "Phone"}
    )
    page = text(response)
    assert response.status_code in (400, 409), page
    assert expected in page and 'value="Phone"' in page
    with runtime_of(app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(TestDevice)) == 1


def test_test_device_pages_refuse_bad_app_ids(console_as: Console, world: dict[str, Any]) -> None:
    marketer = console_as("marketer")
    assert marketer.get("/console/deliveries/test-devices?app_id=abc").status_code == 400
    assert marketer.get("/console/deliveries/test-devices?app_id=%C2%B2").status_code == 400
    assert marketer.get("/console/deliveries/test-devices?app_id=999999").status_code == 400
    label = "x" * 300
    response = marketer.post(
        "/console/deliveries/test-devices",
        {"app_id": world["app"], "by": "subscription", "value": world["subs"]["ada_ios"], "label": label},
    )
    assert response.status_code == 400 and "label" in text(response)


def test_adding_a_profile_adds_only_its_devices_that_can_receive(
    app: Flask, console_as: Console, world: dict[str, Any]
) -> None:
    marketer = console_as("marketer")
    response = marketer.post(
        "/console/deliveries/test-devices",
        {"app_id": world["app"], "by": "profile", "value": crm_id(2), "label": "Grace"},
        follow_redirects=True,
    )
    assert "2 of the profile&#39;s devices cannot receive a proof" in text(response)
    with runtime_of(app).sessions() as session:
        assert list(session.scalars(select(TestDevice.subscription_id))) == [world["subs"]["grace_ios"]]

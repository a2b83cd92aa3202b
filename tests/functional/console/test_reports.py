"""The delivery report in a browser: a delivery sent by the gateway's worker to the local APNs and
FCM emulators is followed live to Completed (the page is never reloaded), shows the API's counts,
lists the tokens the emulators refused under their failure reason and finds them by token."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from playwright.sync_api import expect

from store.types import iso_z, utcnow
from tests.conftest import Keys
from tests.factories import make_app
from tests.functional.console.conftest import serious_violations, sign_in
from tests.functional.test_push_end_to_end import add_subscriptions
from tests.values import apns_token, fcm_token

COUNTED = ("targeted", "sent", "failed", "received", "opened", "clicked", "pending", "ignored", "cancelled")


def test_the_report_follows_a_delivery_to_completed_and_shows_why_tokens_failed(
    app: Flask, console_app: Flask, emulators: Any, keys: Keys, page: Any, make_user: Any, output_dir: Path
) -> None:
    ids = make_app(app, token_uri=emulators.fcm.token_url)
    ios_gone, android_gone = apns_token("gone", "e4100000"), fcm_token("gone", "unregistered-")
    good = [("ios", apns_token(f"ok-{n}")) for n in range(3)] + [("android", fcm_token(f"ok-{n}")) for n in range(3)]
    add_subscriptions(app, ids["id"], [*good, ("ios", ios_gone), ("android", android_gone)])
    sign_in(page, make_user("marketer@example.com", "marketer"))
    api = app.test_client()
    body = {
        "app_id": ids["id"],
        "name": "Spring sale",
        "target": {"all": True},
        "message": {"title": "Spring sale", "body": "20% off until Sunday"},
        # Due a few seconds from now: the report opens while the delivery is still to run.
        "schedule_at": iso_z(utcnow() + timedelta(seconds=4)),
    }
    created = api.post("/api/v1/deliveries", json=body, headers=keys.marketer)
    assert created.status_code == 201, created.json
    delivery_id = created.json["id"]

    page.goto(f"/console/deliveries/{delivery_id}")
    status = page.locator("[data-status]")
    expect(status).to_have_text("Scheduled")
    page.evaluate("window.notReloaded = true")
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()

    expect(status).to_have_text("Completed", timeout=60_000)
    assert page.evaluate("window.notReloaded === true")  # it moved live, not by a reload
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)  # swapped out once finished
    counts = api.get(f"/api/v1/deliveries/{delivery_id}", headers=keys.viewer).json["counts"]
    assert (counts["targeted"], counts["sent"], counts["failed"]) == (8, 6, 2)
    shown = {
        name: int((page.locator(f'dd[data-count="{name}"]').text_content() or "").replace(",", "")) for name in COUNTED
    }
    assert shown == {name: counts[name] for name in COUNTED}
    for label in ("Targeted", "Sent", "Failed", "Received", "Opened", "Clicked"):
        expect(page.locator("dl.metrics dt", has_text=re.compile(f"^{label}$"))).to_be_visible()
    expect(page.locator('[data-rate="delivery"]')).to_have_text("75.0%")
    expect(page.locator("figure.chart svg[role=img]")).to_be_visible()
    assert serious_violations(page) == []
    page.screenshot(path=str(output_dir / "report.png"), full_page=True)  # the README's picture of a report

    # The refused tokens are under their failure reason, and found by token.
    group = page.locator('#failures tr[data-failure-reason="user_unknown"]')
    expect(group).to_contain_text("User unknown")
    expect(group).to_contain_text("Hard")
    group.get_by_role("link").click()
    page.wait_for_url(re.compile(r".*/broadlogs\?.*failure_reason=1"))
    listed = {page.locator("[data-token]").nth(n).get_attribute("data-token") for n in range(2)}
    assert listed == {ios_gone, android_gone}
    assert serious_violations(page) == []

    page.get_by_label("Status").select_option("")
    page.get_by_label("Failure type").select_option("")
    page.get_by_label("Failure reason").select_option("")
    page.get_by_label("Token").fill(ios_gone[:16])
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*token=e4100000"))
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("User unknown")
    assert rows.first.locator("[data-token]").get_attribute("title") == ios_gone

"""The console end to end, as issue 15 checks it: the demo marketer that ``flask --app wsgi demo``
creates signs in, writes a personalised delivery for the demo audience, previews it, sends a proof
that reaches the emulator, sends, and follows the report to Completed with the counts the API
reports; a token the emulator refuses shows under its failure reason. A viewer has no Send, and a
POST without the CSRF token is refused. The report's screenshot is the README's."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import httpx
from flask import Flask
from playwright.sync_api import expect

from domain import apps
from domain.subscriptions import Registration, register
from gateway.cli.devtools import DEMO_APP, DEMO_IOS_TOKEN, DEMO_MARKETER, DEMO_PROFILE
from store.models import BroadLog
from tests.conftest import runtime_of
from tests.factories import push_ids
from tests.functional.console.conftest import ROOT, serious_violations, sign_in
from tests.values import apns_token
from tests.waiting import wait_until

GONE = apns_token("gone", "e4100000")  # the APNs emulator answers 410 Unregistered
README_SCREENSHOT = ROOT / "docs" / "console-report.png"


def demo(console_app: Flask, emulators: Any) -> str:
    """Run ``flask --app wsgi demo`` against the console's gateway; the demo marketer's password."""
    result = console_app.test_cli_runner().invoke(args=["demo", "--fcm-token-url", emulators.fcm.token_url])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("console:"))
    assert f"as {DEMO_MARKETER} with the password " in line
    return line.rsplit(" ", 1)[1]


def test_the_demo_marketer_sends_a_delivery_from_compose_to_a_completed_report(
    console_app: Flask, emulators: Any, page: Any, keys: Any, console_url: str, output_dir: Path
) -> None:
    password = demo(console_app, emulators)
    # The demo's welcome delivery (to every subscriber) goes first: the old iPhone below must not
    # get it, or its token would be quarantined before this test's delivery.
    wait_until(lambda: emulators.inbox.count() >= 2, 30, message="the welcome delivery was not sent")
    with runtime_of(console_app).sessions.begin() as session:  # an old iPhone of the demo person
        demo_app = apps.by_name(session, DEMO_APP)
        assert demo_app is not None
        registration = Registration(
            app_id=demo_app.id,
            platform="ios",
            token=GONE,
            sdk="campaign-classic",
            push_provider="apns",
            user_key=DEMO_PROFILE,
            sets_user_key=True,
            device={"device_model": "iPhone 8"},
        )
        register(session, registration, reconciliation_field="external_id")
    sign_in(page, DEMO_MARKETER, password)
    page.get_by_role("link", name="New delivery").click()
    page.get_by_label("Name", exact=True).fill("December offers")
    page.get_by_role("radio", name="Audience").check()
    page.get_by_label("Chosen audience").select_option(label="Demo audience")
    page.get_by_label("Title", exact=True).fill("Hello {{ profile.first_name }}")
    page.get_by_label("Body", exact=True).fill("Two days of December offers, just for you.")
    page.get_by_label("Preview for profile").fill(DEMO_PROFILE)
    page.get_by_role("button", name="Preview").click()
    for platform in ("iOS", "Android"):
        figure = page.get_by_role("figure", name=re.compile(f"{platform} notification preview"))
        expect(figure.locator(".mock-title")).to_have_text("Hello Ada")

    before = emulators.inbox.count("ios")  # the welcome delivery may have gone out already
    page.get_by_role("checkbox", name=re.compile("Demo iPhone")).check()
    page.get_by_role("button", name="Send proof").click()
    expect(page.locator("#proof-outcome tbody tr").first).to_contain_text("Sent", timeout=30_000)
    proofs = [r for r in emulators.inbox.items("ios")[before:] if r["token"] == DEMO_IOS_TOKEN]
    assert [r["payload"]["aps"]["alert"]["title"] for r in proofs] == ["Hello Ada"]

    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="This delivery will reach")).to_have_text(
        "This delivery will reach 3 devices (2 iOS, 1 Android)."
    )
    page.get_by_role("button", name="Confirm and send").click()
    page.wait_for_url(re.compile(r".*/console/deliveries/\d+$"))
    delivery_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_text("Completed", exact=True)).to_be_visible(timeout=30_000)

    # The person opens it on the phone that got it: the report counts it (after the page's refresh).
    with runtime_of(console_app).sessions() as session:
        sent = session.query(BroadLog).filter_by(delivery_id=delivery_id, address=DEMO_IOS_TOKEN).one()
    _mid, did = push_ids(console_app, sent.id, delivery_id)
    with httpx.Client(base_url=console_url) as http:
        assert http.get(f"/r/?id=h{sent.id:x},{did},2").status_code == 200
        api = http.get(f"/api/v1/deliveries/{delivery_id}", headers=keys.viewer).json()["counts"]
    page.reload()
    metrics = page.locator("dl.metrics").first
    for label in ("Targeted", "Sent", "Failed", "Received", "Opened", "Clicked"):
        shown = metrics.locator("div").filter(has=page.get_by_text(label, exact=True)).locator("dd")
        expect(shown).to_have_text(str(api[label.lower()]))
    assert (api["targeted"], api["sent"], api["failed"], api["opened"]) == (3, 2, 1, 1)
    failures = page.get_by_role("table", name=re.compile("failure type and reason"))
    expect(failures.get_by_role("row").filter(has_text="User unknown")).to_contain_text("1")
    assert serious_violations(page) == []
    page.screenshot(path=str(output_dir / "report.png"), full_page=True)
    if not README_SCREENSHOT.exists():  # the README's picture: regenerate by deleting it
        shutil.copyfile(output_dir / "report.png", README_SCREENSHOT)


def test_a_viewer_has_no_send_and_a_post_without_the_csrf_token_is_refused(
    console_app: Flask, emulators: Any, page: Any, make_user: Any
) -> None:
    password = demo(console_app, emulators)
    sign_in(page, make_user("viewer@example.com", "viewer"))
    page.goto("/console/deliveries/")
    expect(page.get_by_role("link", name="New delivery")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Send"))).to_have_count(0)
    # Signed in as the marketer, a form posted from elsewhere (no token) changes nothing.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, DEMO_MARKETER, password)
    refused = page.request.post("/console/deliveries/new", form={"name": "Forged", "action": "send"})
    assert refused.status == 400 and "CSRF" in refused.text()
    page.goto("/console/deliveries/")
    expect(page.get_by_role("link", name="Forged")).to_have_count(0)

"""Composing a delivery in a browser: a marketer keeps a test device, writes a personalised message
for an audience, previews it for a profile on the iOS and Android mock-ups (with and without
JavaScript), sends a proof that reaches the local APNs emulator and shows its outcome, then sends
after a confirmation that states the count, and lands on the report. A viewer sees no Send."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from playwright.sync_api import expect

from tests.factories import make_app, make_profile
from tests.functional.console.conftest import PASSWORD, serious_violations, sign_in
from tests.gateway.console.delivery_world import add_subscription, make_audience, quarantine
from tests.values import apns_token, crm_id, fcm_token


def shop(app: Flask, emulators: Any) -> dict[str, Any]:
    """The Shop app; Ada (iPhone, Pixel) and Grace (iPhone; a quarantined Pixel) in "Spring buyers"."""
    ids = make_app(app, token_uri=emulators.fcm.token_url)
    ada = make_profile(app, crm_id(1), first_name="Ada", push_consent="y")
    grace = make_profile(app, crm_id(2), first_name="Grace")
    subs = {
        "ada_ios": add_subscription(app, ids["id"], "ios", apns_token("ada"), ada),
        "ada_android": add_subscription(app, ids["id"], "android", fcm_token("ada"), ada),
        "grace_ios": add_subscription(app, ids["id"], "ios", apns_token("grace"), grace),
        "grace_android": add_subscription(app, ids["id"], "android", fcm_token("grace"), grace),
    }
    quarantine(app, ids["id"], "android", fcm_token("grace"))
    audience = make_audience(app, "Spring buyers", [ada, grace])
    return {"app": ids["id"], "subs": subs, "audience": audience}


def write_message(page: Any) -> None:
    page.get_by_label("Name", exact=True).fill("Spring sale")
    page.get_by_role("radio", name="Audience").check()
    page.get_by_label("Chosen audience").select_option(label="Spring buyers")
    page.get_by_label("Title", exact=True).fill("Hello {{ profile.first_name }}")
    page.get_by_label("Subtitle").fill("Just for you")
    page.get_by_label("Body", exact=True).fill("Our spring sale starts today.")
    page.get_by_label("Data").fill("offer=SPRING24")
    page.get_by_label("Preview for profile").fill(crm_id(1))


def test_a_marketer_previews_proofs_and_sends_a_personalised_delivery(
    app: Flask, console_app: Flask, emulators: Any, page: Any, make_user: Any, output_dir: Path
) -> None:
    world = shop(app, emulators)
    sign_in(page, make_user("marketer@example.com", "marketer"))

    # A test device, kept on its page.
    page.goto("/console/deliveries/")
    page.get_by_role("link", name="Test devices").click()
    page.get_by_label("Find by").select_option(label="Subscription id")
    page.get_by_label("Subscription id, push token or profile external id").fill(str(world["subs"]["ada_ios"]))
    page.get_by_label("Label").fill("Ada's iPhone")
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_role("cell", name="Ada's iPhone", exact=True)).to_be_visible()
    assert serious_violations(page) == []
    page.screenshot(path=str(output_dir / "test-devices.png"), full_page=True)

    page.goto("/console/deliveries/")
    page.get_by_role("link", name="New delivery").click()
    write_message(page)

    # As you type: a template error next to its field, then the size meter.
    page.get_by_label("Title", exact=True).fill("Hello {{ profile.first_name")
    expect(page.locator("#e-title")).to_contain_text("unexpected end of template")
    page.get_by_label("Title", exact=True).fill("Hello {{ profile.first_name }}")
    expect(page.locator("#e-title")).to_have_text("")
    expect(page.locator("[data-size-text]")).to_contain_text("of 4096 bytes")
    assert int(page.locator("#size-meter").evaluate("m => m.value")) > 0

    # Preview for Ada, in place.
    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Preview").click()
    ios = page.get_by_role("figure", name=re.compile("iOS notification preview"))
    android = page.get_by_role("figure", name=re.compile("Android notification preview"))
    expect(ios.locator(".mock-title")).to_have_text("Hello Ada")
    expect(ios.locator(".mock-subtitle")).to_have_text("Just for you")
    expect(android.locator(".mock-title")).to_have_text("Hello Ada")
    expect(android).to_contain_text("Our spring sale starts today.")
    assert page.evaluate("window.notReloaded === true")
    assert serious_violations(page) == []
    page.screenshot(path=str(output_dir / "new-delivery.png"), full_page=True)

    # Send proof to Ada's iPhone: it reaches the APNs emulator and the page shows Sent.
    page.get_by_role("checkbox", name=re.compile("Ada's iPhone")).check()
    page.get_by_role("button", name="Send proof").click()
    outcome = page.locator("#proof-outcome")
    expect(outcome.get_by_role("cell", name="Ada's iPhone", exact=True)).to_be_visible()
    expect(outcome.locator("tbody tr").first).to_contain_text("Sent", timeout=30_000)
    received = [r for r in emulators.inbox.items("ios") if r["token"] == apns_token("ada")]
    assert len(received) == 1 and received[0]["status"] == 200
    assert received[0]["payload"]["aps"]["alert"]["title"] == "Hello Ada"
    assert received[0]["payload"]["offer"] == "SPRING24"
    assert emulators.inbox.count("android") == 0  # the proof went to the test device only
    outcome.screenshot(path=str(output_dir / "proof.png"))

    # Send: the confirmation states the count, then the report.
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="This delivery will reach")).to_have_text(
        "This delivery will reach 3 devices (2 iOS, 1 Android)."
    )
    assert serious_violations(page) == []
    page.screenshot(path=str(output_dir / "confirm.png"), full_page=True)
    page.get_by_role("button", name="Confirm and send").click()
    page.wait_for_url(re.compile(r".*/console/deliveries/\d+$"))
    delivery_id = int(page.url.rsplit("/", 1)[1])

    page.goto("/console/deliveries/")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="Spring sale", exact=True))
    expect(row).to_contain_text("marketer@example.com")
    expect(row).to_contain_text("Audience: Spring buyers")
    assert row.get_by_role("link", name="Spring sale").get_attribute("href") == f"/console/deliveries/{delivery_id}"
    expect(page.get_by_role("link", name="Proof: Spring sale")).to_have_count(0)  # proofs stay apart
    assert serious_violations(page) == []


def test_preview_works_without_javascript(
    app: Flask, console_app: Flask, emulators: Any, browser: Any, console_url: str, make_user: Any, output_dir: Path
) -> None:
    shop(app, emulators)
    make_user("marketer@example.com", "marketer")
    context = browser.new_context(base_url=console_url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, "marketer@example.com", PASSWORD)
        page.goto("/console/deliveries/new")
        write_message(page)
        page.get_by_role("button", name="Preview").click()
        page.wait_for_load_state()
        for platform in ("iOS", "Android"):
            figure = page.get_by_role("figure", name=re.compile(f"{platform} notification preview"))
            expect(figure.locator(".mock-title")).to_have_text("Hello Ada")
        expect(page.get_by_label("Name", exact=True)).to_have_value("Spring sale")  # values kept
        expect(page.get_by_role("radio", name="Audience")).to_be_checked()
        page.screenshot(path=str(output_dir / "preview-without-js.png"), full_page=True)
    finally:
        context.close()


def test_a_viewer_sees_the_list_but_no_send(
    app: Flask, console_app: Flask, emulators: Any, page: Any, make_user: Any
) -> None:
    shop(app, emulators)
    sign_in(page, make_user("viewer@example.com", "viewer"))
    page.goto("/console/deliveries/")
    expect(page.get_by_role("heading", name="Deliveries")).to_be_visible()
    expect(page.get_by_role("link", name="New delivery")).to_have_count(0)
    expect(page.get_by_role("button", name="Send")).to_have_count(0)
    assert serious_violations(page) == []
    response = page.goto("/console/deliveries/new")
    assert response is not None and response.status == 403
    expect(page.get_by_role("button", name="Send")).to_have_count(0)

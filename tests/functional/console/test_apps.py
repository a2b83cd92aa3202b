"""An admin in a browser creates an app with its APNs key and FCM service account uploaded as
files, sees only their public parts afterwards, and copies the Android Campaign Classic SDK
configuration; the list, the new-app form and the app page have no serious accessibility
violation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask import Flask

from tests.factories import apns_key_p8, service_account
from tests.functional.console.conftest import playwright_api, serious_violations, sign_in
from tests.values import ORG, PKEY


def test_an_admin_creates_an_app_with_uploaded_credentials_and_copies_its_sdk_configuration(
    app: Flask,  # first: its clean-up empties the tables once the console's gateway has stopped
    page: Any,
    console_url: str,
    make_user: Any,
    tmp_path: Path,
) -> None:
    key = apns_key_p8()
    account = service_account(project_id="shop-push-4f2a1")
    p8 = tmp_path / "AuthKey_ABC123DEFG.p8"
    p8.write_text(key)
    account_file = tmp_path / "shop-push-4f2a1-firebase-adminsdk.json"
    account_file.write_text(json.dumps(account))

    sign_in(page, make_user("admin@example.com", "admin"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Apps", exact=True).click()
    page.wait_for_url(re.compile(r".*/console/apps/$"))
    assert serious_violations(page) == []
    page.get_by_role("link", name="New app").click()
    page.wait_for_url(re.compile(r".*/console/apps/new$"))
    assert serious_violations(page) == []

    page.get_by_label("Name", exact=True).fill("Shop")
    page.get_by_label("iOS bundle ID").fill("com.example.shop")
    page.get_by_label("APNs key (.p8 file)").set_input_files(str(p8))
    page.get_by_label("Key ID").fill("ABC123DEFG")
    page.get_by_label("Team ID").fill("TEAM123456")
    page.get_by_label("APNs environment").select_option("sandbox")
    page.get_by_label("Android package name").fill("com.example.shop")
    page.get_by_label("FCM service account (JSON file)").set_input_files(str(account_file))
    page.get_by_label("Campaign Standard pkey").fill(PKEY)
    page.get_by_label("Experience Cloud org").fill(ORG)
    page.get_by_role("button", name="Create app").click()
    page.wait_for_url(re.compile(r".*/console/apps/\d+$"))

    assert page.get_by_role("status").filter(has_text="App Shop created.").is_visible()
    ios = page.get_by_role("region", name="iOS")
    assert "ABC123DEFG" in ios.inner_text() and "TEAM123456" in ios.inner_text()
    android = page.get_by_role("region", name="Android")
    assert account["client_email"] in android.inner_text() and "shop-push-4f2a1" in android.inner_text()
    content = page.content()
    assert "PRIVATE KEY" not in content
    assert serious_violations(page) == []

    page.get_by_label("Platform").select_option(label="Android")
    page.get_by_label("SDK", exact=True).select_option(label="Campaign Classic")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*platform=android&sdk=campaign-classic"))
    integration_key = android.locator("dd").nth(1).inner_text()
    configuration = json.loads(page.locator("pre#sdk-configuration").inner_text())
    assert configuration["campaignclassic.android.integrationKey"] == integration_key
    assert configuration["campaignclassic.marketingServer"] == "push.example.test"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_url)
    page.get_by_role("button", name="Copy the Android Campaign Classic configuration").click()
    copied = page.get_by_role("button", name="Copied the Android Campaign Classic configuration")
    playwright_api.expect(copied).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == page.locator("pre#sdk-configuration").text_content()
    assert "Kotlin code" in page.get_by_role("region", name="SDK configuration").inner_text()
    assert serious_violations(page) == []

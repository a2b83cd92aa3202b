"""A viewer in a browser goes from the audiences to a member's profile (attributes, subscriptions
with the quarantined one marked, recent messages) and finds a profile by e-mail; each of these
pages passes axe-core's serious and critical checks."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from tests.factories import make_profile
from tests.functional.console.conftest import serious_violations, sign_in
from tests.gateway.console.test_audiences import FIRST_IMPORT, SEG_VIP, export_name
from tests.gateway.console.test_profiles import seed_person
from tests.values import crm_id


def test_a_viewer_goes_from_an_audience_to_a_members_profile_and_searches_by_email(
    page: Any, console_app: Flask, make_user: Any, output_dir: Path
) -> None:
    others = [(make_profile(console_app, crm_id(5000 + n), email=f"vip{n}@example.com"), "existing") for n in range(4)]
    ada = seed_person(console_app, other_vips=[*others, (make_profile(console_app, crm_id(5999)), "exited")])
    sign_in(page, make_user("viewer@example.com", "viewer"))

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audiences", exact=True).click()
    page.wait_for_url(re.compile(r".*/console/audiences/$"))
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="VIP customers"))
    cells = row.get_by_role("cell").all_inner_texts()
    assert cells[1] == "5"  # Ada and four others; the one who left is not counted
    assert cells[2] == SEG_VIP
    assert "2026-12-02 06:00:00 UTC" in cells[3] and "1 entered, 11 existing, 2 exited" in cells[3]
    assert export_name(SEG_VIP, FIRST_IMPORT + timedelta(days=1)) in cells[3]
    assert serious_violations(page) == []
    page.screenshot(path=str(output_dir / "audiences.png"), full_page=True)

    row.get_by_role("link", name="VIP customers").click()
    page.get_by_role("heading", name="VIP customers", level=1).wait_for()
    assert page.get_by_text("5 members", exact=True).is_visible()
    history = page.get_by_role("table", name="Import history")
    assert history.get_by_role("row").count() == 3  # header and two files
    assert serious_violations(page) == []
    page.screenshot(path=str(output_dir / "audience.png"), full_page=True)

    page.get_by_role("table", name="Members").get_by_role("link", name=ada.external_id).click()
    page.get_by_role("heading", name=re.compile("^Ada Lovelace"), level=1).wait_for()
    assert page.url.endswith(f"/console/profiles/{ada.external_id}")
    attributes = page.get_by_role("region", name="Attributes", exact=True)
    assert ada.email in attributes.inner_text() and "Europe/London" in attributes.inner_text()
    assert "gold" in page.get_by_role("table", name="Custom attributes", exact=True).inner_text()
    assert "Yes" in page.get_by_role("region", name="Consent").inner_text()
    subscriptions = page.get_by_role("table", name="Subscriptions")
    quarantined = subscriptions.get_by_role("row").filter(has_text="Quarantined")
    assert quarantined.count() == 1 and "Android" in quarantined.inner_text()
    assert "iOS" not in quarantined.inner_text()
    messages = page.get_by_role("table", name="Recent messages")
    spring = messages.get_by_role("row").filter(has=page.get_by_role("link", name="Spring sale"))
    assert "Sent" in spring.inner_text()
    cart = messages.get_by_role("row").filter(has=page.get_by_role("link", name="Cart reminder"))
    assert "User unknown" in cart.inner_text()
    assert serious_violations(page) == []
    page.screenshot(path=str(output_dir / "profile.png"), full_page=True)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Profiles", exact=True).click()
    page.get_by_label("Email").fill(ada.email)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*/console/profiles/\?.*email=.*"))
    results = page.get_by_role("table", name="Matching profiles")
    assert results.get_by_role("link").all_inner_texts() == [ada.external_id]
    assert serious_violations(page) == []
    page.screenshot(path=str(output_dir / "profile-search.png"), full_page=True)
    results.get_by_role("link", name=ada.external_id).click()
    page.get_by_role("heading", name=re.compile("^Ada Lovelace"), level=1).wait_for()

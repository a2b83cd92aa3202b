"""Signing in and out of the console in a browser, and the sign-in page's accessibility."""

from __future__ import annotations

import re
from typing import Any

from tests.functional.console.conftest import serious_violations, sign_in


def test_a_marketer_signs_in_sees_the_navigation_and_signs_out(page: Any, make_user: Any) -> None:
    email = make_user("marketer@example.com", "marketer")
    sign_in(page, email)
    for name in ("Deliveries", "Audiences", "Profiles", "Apps", "Quarantine", "Sync runs", "API keys"):
        assert page.get_by_role("link", name=name, exact=True).is_visible()
    assert page.get_by_text("marketer@example.com").is_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/console/sign-in"))
    page.goto("/console/deliveries/")
    assert "/console/sign-in" in page.url  # signed out: back to the sign-in page


def test_a_wrong_password_is_refused_without_saying_which_part_is_wrong(page: Any, make_user: Any) -> None:
    email = make_user("viewer@example.com", "viewer")
    page.goto("/console/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "The e-mail or the password is wrong."
    assert serious_violations(page) == []

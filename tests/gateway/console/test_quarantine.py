"""The console's Quarantine page: the entries as the API lists them, filters and pages, and the
release a marketer may make (viewers read only; reading releases nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from domain import quarantine
from domain.subscriptions import Registration, register
from gateway.console import quarantine as page
from store.models import Address, Subscription
from store.types import utcnow
from tests.conftest import runtime_of
from tests.factories import make_app
from tests.gateway.console.conftest import ConsoleClient
from tests.values import apns_token, fcm_token

GONE, FLAKY, IPHONE = fcm_token("gone"), fcm_token("flaky"), apns_token("iphone")


def _register(app: Flask, app_id: int, platform: str, token: str) -> None:
    registration = Registration(
        app_id=app_id,
        platform=platform,
        token=token,
        sdk="native",
        push_provider="fcm" if platform == "android" else "apns",
    )
    with runtime_of(app).sessions.begin() as session:
        register(session, registration, reconciliation_field="external_id")


def _hard(
    app: Flask, app_id: int, platform: str, token: str, text: str = "NOT_FOUND: Requested entity was not found."
) -> int:
    with runtime_of(app).sessions.begin() as session:
        address = quarantine.record_hard_error(
            session, app_id=app_id, platform=platform, token=token, reason=1, text=text, unregistered_at=utcnow()
        )
        session.flush()
        return address.id


def _soft(app: Flask, app_id: int, token: str) -> int:
    with runtime_of(app).sessions.begin() as session:
        address = quarantine.record_soft_error(
            session,
            app_id=app_id,
            platform="android",
            token=token,
            reason=3,
            text="UNAVAILABLE: the server is overloaded",
            policy=quarantine.Policy(),
        )
        session.flush()
        return address.id


def _state(app: Flask) -> tuple[list[tuple[int, str, int]], list[tuple[str, bool]]]:
    with runtime_of(app).sessions() as session:
        addresses = [(a.id, a.status, a.error_count) for a in session.scalars(select(Address).order_by(Address.id))]
        subscriptions = [(s.token, s.disabled) for s in session.scalars(select(Subscription).order_by(Subscription.id))]
    return addresses, subscriptions


@pytest.fixture
def entries(app: Flask) -> dict[str, Any]:
    shop = make_app(app)
    news = make_app(app, name="News", suffix=" EU")
    _register(app, shop["id"], "android", GONE)
    return {
        "shop": shop["id"],
        "news": news["id"],
        "gone": _hard(app, shop["id"], "android", GONE),
        "flaky": _soft(app, shop["id"], FLAKY),
        "iphone": _hard(app, news["id"], "ios", IPHONE, "BadDeviceToken"),
    }


def test_the_list_shows_each_entry_as_the_api_does(
    console_as: Callable[[str], ConsoleClient], entries: dict[str, Any]
) -> None:
    response = console_as("viewer").get("/console/quarantine/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>Quarantine</h1>" in html
    assert f'title="{GONE}">{page.short_token(GONE)}</code>' in html
    assert GONE not in html.replace(f'title="{GONE}"', "")  # shortened, whole only in the title
    for text in ("Shop", "News", "Android", "iOS", "With errors", "Quarantine", "User unknown (1)", "Unreachable (3)"):
        assert text in html, text
    assert "NOT_FOUND: Requested entity was not found." in html and "BadDeviceToken" in html
    # the latest entry first
    assert html.index(f'id="entry-{entries["iphone"]}"') < html.index(f'id="entry-{entries["gone"]}"')


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("status=with_errors", ["flaky"]),
        ("status=quarantine", ["gone", "iphone"]),
        ("platform=ios", ["iphone"]),
        ("app={shop}", ["gone", "flaky"]),
        ("app={shop}&status=quarantine&platform=android", ["gone"]),
        ("app={news}&status=with_errors", []),
    ],
)
def test_filters(
    console_as: Callable[[str], ConsoleClient], entries: dict[str, Any], query: str, shown: list[str]
) -> None:
    html = console_as("viewer").get("/console/quarantine/?" + query.format(**entries)).get_data(as_text=True)
    listed = [name for name in ("gone", "flaky", "iphone") if f'id="entry-{entries[name]}"' in html]
    assert sorted(listed) == sorted(shown)
    if not shown:
        assert "No entry matches these filters." in html


@pytest.mark.parametrize("query", ["status=gone", "platform=windows", "app=x", "app=-1", "before=" + "9" * 30])
def test_bad_filters_are_a_400_page(
    console_as: Callable[[str], ConsoleClient], entries: dict[str, Any], query: str
) -> None:
    response = console_as("viewer").get("/console/quarantine/?" + query)
    assert response.status_code == 400
    assert "query parameter" in response.get_data(as_text=True)


def test_pages_of_entries(
    console_as: Callable[[str], ConsoleClient], entries: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(page, "PAGE_SIZE", 2)
    viewer = console_as("viewer")
    first = viewer.get("/console/quarantine/").get_data(as_text=True)
    assert f'id="entry-{entries["iphone"]}"' in first and f'id="entry-{entries["flaky"]}"' in first
    assert f'id="entry-{entries["gone"]}"' not in first
    assert f'href="/console/quarantine/?before={entries["flaky"]}">Next page</a>' in first
    second = viewer.get(f"/console/quarantine/?before={entries['flaky']}").get_data(as_text=True)
    assert f'id="entry-{entries["gone"]}"' in second and "Next page" not in second and "First page" in second


def test_a_marketer_releases_an_entry(
    app: Flask, console_as: Callable[[str], ConsoleClient], entries: dict[str, Any]
) -> None:
    marketer = console_as("marketer")
    html = marketer.get("/console/quarantine/?status=quarantine").get_data(as_text=True)
    assert f'action="/console/quarantine/{entries["gone"]}/release"' in html and "data-confirm=" in html
    response = marketer.post(
        f"/console/quarantine/{entries['gone']}/release", {"back": "/console/quarantine/?status=quarantine"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/quarantine/?status=quarantine"
    addresses, subscriptions = _state(app)
    assert (entries["gone"], "valid", 0) in addresses
    assert subscriptions == [(GONE, False)]  # its subscription is enabled again
    shown = marketer.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Token {page.short_token(GONE)} released" in shown
    assert f'id="entry-{entries["gone"]}"' not in shown  # no longer in quarantine


def test_release_goes_back_only_to_a_console_page(
    console_as: Callable[[str], ConsoleClient], entries: dict[str, Any]
) -> None:
    response = console_as("admin").post(
        f"/console/quarantine/{entries['iphone']}/release", {"back": "https://evil.example/"}
    )
    assert (response.status_code, response.headers["Location"]) == (303, "/console/quarantine/")


def test_a_viewer_sees_no_release_and_cannot_post_one(
    app: Flask, console_as: Callable[[str], ConsoleClient], entries: dict[str, Any]
) -> None:
    viewer = console_as("viewer")
    html = viewer.get("/console/quarantine/").get_data(as_text=True)
    assert "Release" not in html and "/release" not in html
    before = _state(app)
    response = viewer.post(f"/console/quarantine/{entries['gone']}/release")
    assert response.status_code == 403
    assert "this needs the marketer role" in response.get_data(as_text=True)
    assert _state(app) == before


def test_reading_releases_nothing(
    app: Flask, console_as: Callable[[str], ConsoleClient], entries: dict[str, Any]
) -> None:
    _register(app, entries["shop"], "android", GONE)  # registered again after FCM called it gone
    before = _state(app)
    viewer = console_as("viewer")
    for _ in range(2):
        assert viewer.get("/console/quarantine/").status_code == 200
    assert viewer.client.get(f"/console/quarantine/{entries['gone']}/release").status_code == 405
    assert _state(app) == before


@pytest.mark.parametrize("address_id", ["999999", str(2**31)])
def test_releasing_an_unknown_entry_is_a_404_page(
    console_as: Callable[[str], ConsoleClient], entries: dict[str, Any], address_id: str
) -> None:
    response = console_as("marketer").post(f"/console/quarantine/{address_id}/release")
    assert response.status_code == 404
    assert f"no quarantine entry with id {address_id}" in response.get_data(as_text=True)


def test_an_empty_quarantine_says_so(console_as: Callable[[str], ConsoleClient]) -> None:
    html = console_as("viewer").get("/console/quarantine/").get_data(as_text=True)
    assert "the quarantine is empty" in html


def test_a_release_without_the_csrf_token_is_refused(
    app: Flask, console_as: Callable[[str], ConsoleClient], entries: dict[str, Any]
) -> None:
    before = _state(app)
    response = console_as("marketer").client.post(f"/console/quarantine/{entries['gone']}/release")
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    assert _state(app) == before

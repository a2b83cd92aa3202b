"""The console's sign-in, sessions, roles and CSRF checks, through Flask's test client."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from domain import users
from tests.conftest import runtime_of
from tests.gateway.console.conftest import PASSWORD, ConsoleClient, sign_in


def test_pages_send_a_visitor_to_sign_in_and_back(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/console/deliveries/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/console/sign-in?next=/console/deliveries/"


def test_the_session_cookie_is_httponly_and_samesite_lax_and_secure_over_https(app: Flask) -> None:
    with runtime_of(app).sessions.begin() as session:
        users.create_user(session, email="ada@example.com", role="viewer", password=PASSWORD)
    client = app.test_client()
    sign_in(client, "ada@example.com")
    cookie = client.get_cookie("pushgate_console", path="/console")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax" and not cookie.secure
    secure = app.test_client()
    page = secure.get("/console/sign-in", base_url="https://push.example.test").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = secure.post(
        "/console/sign-in",
        data={"email": "ada@example.com", "password": PASSWORD, "csrf_token": token},
        base_url="https://push.example.test",
        headers={"Referer": "https://push.example.test/console/sign-in"},  # checked over HTTPS
    )
    assert "Secure" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]


def test_a_post_without_the_csrf_token_is_refused(console_as: Callable[[str], ConsoleClient]) -> None:
    marketer = console_as("marketer")
    response = marketer.client.post("/console/sign-out")
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert marketer.get("/console/deliveries/").status_code == 200  # still signed in


def test_changing_the_password_ends_other_sessions(app: Flask, console_as: Callable[[str], ConsoleClient]) -> None:
    first = console_as("viewer")
    second = app.test_client()
    assert sign_in(second, first.email).status_code == 302
    response = first.post(
        "/console/password",
        {"current_password": PASSWORD, "new_password": "a new long password", "repeat_password": "a new long password"},
    )
    assert response.status_code == 200 and "Your password is changed" in response.get_data(as_text=True)
    assert first.get("/console/deliveries/").status_code == 200
    assert second.get("/console/deliveries/").status_code == 302  # signed out
    assert sign_in(app.test_client(), first.email, "a new long password").status_code == 302


def test_a_wrong_current_password_changes_nothing(console_as: Callable[[str], ConsoleClient]) -> None:
    viewer = console_as("viewer")
    response = viewer.post(
        "/console/password",
        {
            "current_password": "not it at all",
            "new_password": "a new long password",
            "repeat_password": "a new long password",
        },
    )
    assert response.status_code == 400 and "current password is not right" in response.get_data(as_text=True)


def test_sign_in_attempts_are_limited_per_address(gateway_with: Callable[..., Flask]) -> None:
    app = gateway_with(rate_limit_sign_in="3/minute")
    client = app.test_client()
    statuses = [sign_in(client, "nobody@example.com", "wrong password").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert "Too many sign-in attempts" in sign_in(client, "other@example.com", "x" * 12).get_data(as_text=True)


def test_next_never_leaves_the_console(app: Flask) -> None:
    with runtime_of(app).sessions.begin() as session:
        users.create_user(session, email="ada@example.com", role="viewer", password=PASSWORD)
    client = app.test_client()
    page = client.get("/console/sign-in").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        "/console/sign-in",
        data={"email": "ada@example.com", "password": PASSWORD, "csrf_token": token, "next": "//evil.example/x"},
    )
    assert response.headers["Location"] == "/console/deliveries/"


def test_an_unknown_console_path_is_a_page_and_an_unknown_api_path_json(
    console_as: Callable[[str], ConsoleClient], app: Flask
) -> None:
    viewer = console_as("viewer")
    for path in ("/console/audiences/1/nothing-here", "/console/deliveries/" + "9" * 30):
        response = viewer.get(path)
        assert response.status_code == 404 and response.mimetype == "text/html"
        assert "Deliveries" in response.get_data(as_text=True)  # the console's layout, with its navigation
    assert app.test_client().get("/api/v1/nothing").mimetype == "application/json"

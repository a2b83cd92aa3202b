"""Fixtures of the console's view tests (Flask's test client, no browser): users of each role,
clients signed in as them, and POSTs that carry the session's CSRF token as a form does."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from domain import users
from tests.conftest import runtime_of

PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class ConsoleClient:
    """A test client signed in to the console; :meth:`post` sends a form with its CSRF token."""

    def __init__(self, client: FlaskClient, email: str) -> None:
        self.client, self.email = client, email

    def token(self) -> str:
        match = _TOKEN.search(self.client.get("/console/password").get_data(as_text=True))
        assert match, "no CSRF token on the password page"
        return match.group(1)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> TestResponse:
        return self.client.post(path, data={"csrf_token": self.token(), **(data or {})}, **kwargs)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> TestResponse:
    page = client.get("/console/sign-in").get_data(as_text=True)
    match = _TOKEN.search(page)
    assert match
    return client.post("/console/sign-in", data={"email": email, "password": password, "csrf_token": match.group(1)})


@pytest.fixture
def console_as(app: Flask) -> Callable[[str], ConsoleClient]:
    """``console_as("marketer")``: a new client signed in as a new user of that role."""

    def make(role: str) -> ConsoleClient:
        email = f"{role}-{len(made)}@example.com"
        with runtime_of(app).sessions.begin() as session:
            users.create_user(session, email=email, role=role, password=PASSWORD)
        client = app.test_client()
        response = sign_in(client, email)
        assert response.status_code == 302, response.get_data(as_text=True)
        made.append(email)
        return ConsoleClient(client, email)

    made: list[str] = []
    return make

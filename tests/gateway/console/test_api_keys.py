"""The console's API keys page (admin only): the list never shows a secret, a new key is shown
once in the answer to its creation, and a revoked key stops working on /api/v1."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask

from domain import keys
from tests.conftest import runtime_of
from tests.factories import make_app
from tests.gateway.console.conftest import ConsoleClient

_KEY = re.compile(r'<pre id="new-api-key" class="secret">(pgk_[A-Za-z0-9_-]+)</pre>')


def _bearer(full: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {full}"}


def _create(admin: ConsoleClient, **form: object) -> tuple[str, str]:
    response = admin.post("/console/api-keys/", {"role": "viewer", **form})
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    match = _KEY.search(html)
    assert match, html
    return match.group(1), html


@pytest.mark.parametrize("role", ["viewer", "marketer"])
def test_only_admins_reach_the_page(app: Flask, console_as: Callable[[str], ConsoleClient], role: str) -> None:
    user = console_as(role)
    page = user.get("/console/api-keys/")
    assert page.status_code == 403
    assert f"this needs the admin role; yours is {role}" in page.get_data(as_text=True)
    assert user.post("/console/api-keys/", {"name": "CRM export", "role": "admin"}).status_code == 403
    with runtime_of(app).sessions() as session:
        assert keys.list_keys(session, include_revoked=True) == []
    assert 'href="/console/api-keys/">API keys</a>' in user.get("/console/quarantine/").get_data(as_text=True)


def test_a_new_key_is_shown_once_and_works(app: Flask, console_as: Callable[[str], ConsoleClient]) -> None:
    admin = console_as("admin")
    full, html = _create(admin, name="Campaign workflow", role="marketer")
    assert 'data-copy="new-api-key"' in html and "the only time it is shown" in html
    assert "Campaign workflow" in html and "Every app" in html
    lookup = full.split("_")[1]
    listing = admin.get("/console/api-keys/").get_data(as_text=True)
    assert f"<code>pgk_{lookup}_…</code>" in listing and "Campaign workflow" in listing
    assert full not in listing and full.split("_", 2)[2] not in listing  # never the secret again
    api = app.test_client()
    assert api.get("/api/v1/quarantine", headers=_bearer(full)).status_code == 200
    assert api.post("/api/v1/profiles", headers=_bearer(full), json={}).status_code != 403  # a marketer's


def test_a_key_limited_to_apps(app: Flask, console_as: Callable[[str], ConsoleClient]) -> None:
    shop, news = make_app(app)["id"], make_app(app, name="News", suffix=" EU")["id"]
    admin = console_as("admin")
    form = admin.get("/console/api-keys/").get_data(as_text=True)
    assert f'name="apps" value="{shop}"' in form and f'name="apps" value="{news}"' in form
    full, html = _create(admin, name="News app backend", apps=[str(news)])
    assert "<dd>News EU</dd>" in html
    with runtime_of(app).sessions() as session:
        key = keys.authenticate(session, full)
        assert key is not None and keys.scope_of(key).apps == frozenset({news})
    api = app.test_client()
    assert api.get(f"/api/v1/apps/{news}", headers=_bearer(full)).status_code == 200
    assert api.get(f"/api/v1/apps/{shop}", headers=_bearer(full)).status_code == 404


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"name": "   ", "role": "viewer"}, "name", "must not be blank"),
        ({"name": "x" * 201, "role": "viewer"}, "name", "at most 200 characters"),
        ({"name": "CRM\x00export", "role": "viewer"}, "name", "must not contain control characters"),
        ({"name": "CRM export", "role": "root"}, "role", "Choose one of the roles listed."),
        ({"name": "CRM export", "role": "viewer", "apps": ["x"]}, "apps", "valid integer"),
        ({"name": "CRM export", "role": "viewer", "apps": ["99999"]}, "apps", "no app with id 99999"),
    ],
)
def test_bad_forms_are_shown_again_with_the_error(
    app: Flask, console_as: Callable[[str], ConsoleClient], form: dict[str, object], field: str, message: str
) -> None:
    response = console_as("admin").post("/console/api-keys/", form)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html and "The key was not created" in html
    assert "new-api-key" not in html
    if field == "role":
        assert 'name="name" type="text" value="CRM export"' in html  # what was typed is kept
    with runtime_of(app).sessions() as session:
        assert keys.list_keys(session, include_revoked=True) == []


def test_a_revoked_key_stops_working(app: Flask, console_as: Callable[[str], ConsoleClient]) -> None:
    admin = console_as("admin")
    full, _html = _create(admin, name="Old CRM export")
    with runtime_of(app).sessions() as session:
        key = keys.authenticate(session, full)
        assert key is not None
        key_id = key.id
    listing = admin.get("/console/api-keys/").get_data(as_text=True)
    assert f'action="/console/api-keys/{key_id}/revoke"' in listing and "data-confirm=" in listing
    response = admin.post(f"/console/api-keys/{key_id}/revoke")
    assert (response.status_code, response.headers["Location"]) == (303, "/console/api-keys/")
    after = admin.get("/console/api-keys/").get_data(as_text=True)
    assert "The API key Old CRM export is revoked" in after
    assert f'action="/console/api-keys/{key_id}/revoke"' not in after  # no second Revoke
    answer = app.test_client().get("/api/v1/quarantine", headers=_bearer(full))
    assert answer.status_code == 401 and answer.json["message"] == "unknown or revoked API key"


def test_revoking_needs_an_admin_and_a_known_key(app: Flask, console_as: Callable[[str], ConsoleClient]) -> None:
    full, _html = _create(console_as("admin"), name="CRM export")
    with runtime_of(app).sessions() as session:
        key = keys.authenticate(session, full)
        assert key is not None
        key_id = key.id
    assert console_as("marketer").post(f"/console/api-keys/{key_id}/revoke").status_code == 403
    assert app.test_client().get("/api/v1/quarantine", headers=_bearer(full)).status_code == 200
    unknown = console_as("admin").post("/console/api-keys/999999/revoke")
    assert unknown.status_code == 404 and "no API key with id 999999" in unknown.get_data(as_text=True)

"""CLI: migrations, API keys (the key is the last line printed) and the demo set-up."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from domain import deliveries
from gateway.cli.devtools import DEMO_APP
from store.models import App, Delivery, Subscription
from tests.conftest import runtime_of
from tests.factories import make_app


def test_keys_create_list_revoke(runner: Any, client: FlaskClient) -> None:
    result = runner.invoke(args=["keys", "create", "--role", "marketer", "--name", "crm sync"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("pgk_")
    assert client.get("/api/v1/profiles", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    listing = runner.invoke(args=["keys", "list"]).output
    assert "crm sync" in listing and key not in listing
    key_id = result.output.split()[2]
    assert runner.invoke(args=["keys", "revoke", key_id]).exit_code == 0
    assert client.get("/api/v1/profiles", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_keys_create_refuses_bad_input(runner: Any) -> None:
    result = runner.invoke(args=["keys", "create", "--role", "owner", "--name", "x"])
    assert result.exit_code != 0 and "owner" in result.output
    result = runner.invoke(args=["keys", "create", "--role", "admin", "--name", " "])
    assert result.exit_code == 1 and "name must be" in result.output
    result = runner.invoke(args=["keys", "revoke", "999999"])
    assert result.exit_code == 1 and "no API key with id 999999" in result.output


def test_if_none_creates_only_the_first_key(runner: Any) -> None:
    first = runner.invoke(args=["keys", "create", "--role", "admin", "--name", "a", "--if-none"])
    assert first.output.strip().splitlines()[-1].startswith("pgk_")
    second = runner.invoke(args=["keys", "create", "--role", "admin", "--name", "b", "--if-none"])
    assert "exists already" in second.output


def test_db_current(runner: Any) -> None:
    result = runner.invoke(args=["db", "current"])
    assert result.exit_code == 0 and "current: 0013; newest: 0013" in result.output


def test_demo_needs_the_emulators_settings(runner: Any) -> None:
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 1 and "instance/emulators.env" in result.output


def test_demo_creates_its_app_and_its_welcome_delivery_once(app: Any, gateway_with: Any) -> None:
    runner = gateway_with(fcm_endpoint="https://127.0.0.1:8444").test_cli_runner()
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0, second.output
    with runtime_of(app).sessions() as session:
        apps = session.query(App).filter_by(name=DEMO_APP).all()
        assert len(apps) == 1 and {p.platform for p in apps[0].platforms} == {"ios", "android"}
        subscriptions = session.query(Subscription).filter_by(app_id=apps[0].id).all()
        assert len(subscriptions) == 2 and all(s.profile_id is not None for s in subscriptions)
        welcome = session.query(Delivery).filter_by(app_id=apps[0].id).order_by(Delivery.id).all()
        assert [d.status for d in welcome] == ["scheduled"]
        assert deliveries.describe(session, welcome[-1])["message"]["title"] == "Hello {{ profile.first_name }}"
    assert f"demo app {apps[0].id}: welcome delivery {welcome[0].id} to 2 devices" in first.output
    assert f"demo app {apps[0].id}: its welcome delivery {welcome[0].id} was made at the first start" in second.output


def test_keys_limited_to_apps(runner: Any, app: Any, client: FlaskClient) -> None:
    first, second = make_app(app), make_app(app, name="Other", suffix="-other")
    made = runner.invoke(args=["keys", "create", "--role", "viewer", "--name", "agency", "--app", str(first["id"])])
    assert made.exit_code == 0 and f"limited to apps {first['id']}" in made.output
    headers = {"Authorization": f"Bearer {made.output.strip().splitlines()[-1]}"}
    assert client.get(f"/api/v1/apps/{first['id']}", headers=headers).status_code == 200
    assert client.get(f"/api/v1/apps/{second['id']}", headers=headers).status_code == 404
    listing = runner.invoke(args=["keys", "list"]).output
    assert any(line.endswith("agency") and f"\t{first['id']}\t" in line for line in listing.splitlines())
    unknown = runner.invoke(args=["keys", "create", "--role", "viewer", "--name", "x", "--app", "424242"])
    assert unknown.exit_code == 1 and "no app with id 424242" in unknown.output

"""CLI: console users (the generated password is the last line printed) and the demo marketer."""

from __future__ import annotations

import stat
from typing import Any

from domain import users
from gateway.cli.devtools import DEMO_MARKETER
from tests.conftest import runtime_of


def _signs_in(app: Any, email: str, password: str) -> bool:
    with runtime_of(app).sessions() as session:
        return users.authenticate(session, email, password) is not None


def test_users_create_prints_a_generated_password_last(runner: Any, app: Any) -> None:
    result = runner.invoke(args=["users", "create", "--email", "Ada.Lovelace@Example.com", "--role", "marketer"])
    assert result.exit_code == 0, result.output
    password = result.output.strip().splitlines()[-1]
    assert len(password) == 20 and _signs_in(app, "ada.lovelace@example.com", password)
    listing = runner.invoke(args=["users", "list"]).output
    assert "marketer\tada.lovelace@example.com\tnever signed in" in listing and password not in listing


def test_users_create_with_a_password_and_the_refusals(runner: Any, app: Any) -> None:
    made = runner.invoke(
        args=["users", "create", "--email", "v@example.com", "--role", "viewer", "--password", "p" * 12]
    )
    assert made.exit_code == 0 and "p" * 12 not in made.output and _signs_in(app, "v@example.com", "p" * 12)
    again = runner.invoke(args=["users", "create", "--email", "V@example.com", "--role", "admin"])
    assert again.exit_code == 1 and "exists already" in again.output
    short = runner.invoke(
        args=["users", "create", "--email", "w@example.com", "--role", "viewer", "--password", "short"]
    )
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    bad = runner.invoke(args=["users", "create", "--email", "not-an-email", "--role", "viewer"])
    assert bad.exit_code == 1 and "not an e-mail address" in bad.output
    role = runner.invoke(args=["users", "create", "--email", "x@example.com", "--role", "owner"])
    assert role.exit_code == 2 and "owner" in role.output


def test_users_set_password(runner: Any, app: Any) -> None:
    runner.invoke(args=["users", "create", "--email", "a@example.com", "--role", "admin", "--password", "a" * 12])
    reset = runner.invoke(args=["users", "set-password", "--email", "a@example.com"])
    assert reset.exit_code == 0, reset.output
    new = reset.output.strip().splitlines()[-1]
    assert _signs_in(app, "a@example.com", new) and not _signs_in(app, "a@example.com", "a" * 12)
    unknown = runner.invoke(args=["users", "set-password", "--email", "nobody@example.com"])
    assert unknown.exit_code == 1 and "no user with e-mail nobody@example.com" in unknown.output


def test_demo_creates_the_marketer_once_and_prints_its_sign_in_each_time(app: Any, gateway_with: Any) -> None:
    demo = gateway_with(fcm_endpoint="https://127.0.0.1:8444")
    cli = demo.test_cli_runner()
    first = cli.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    line = first.output.strip().splitlines()[-1]
    assert line.startswith(f"console: sign in at /console/ as {DEMO_MARKETER} with the password ")
    password = line.rsplit(" ", 1)[-1]
    assert _signs_in(app, DEMO_MARKETER, password)
    kept = runtime_of(demo).settings.instance_path / "console-demo-password"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert cli.invoke(args=["demo"]).output.strip().splitlines()[-1] == line
    with runtime_of(app).sessions.begin() as session:
        user = users.find(session, DEMO_MARKETER)
        assert user is not None
        users.set_password(session, user, "changed in the console")
    changed = cli.invoke(args=["demo"]).output.strip().splitlines()[-1]
    assert "changed in the console" not in changed and "users set-password" in changed

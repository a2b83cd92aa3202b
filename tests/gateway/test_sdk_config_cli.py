"""CLI: flask --app wsgi sdk-config APP --platform ... --sdk ... [--out FILE]."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gateway.app import create_app
from tests.conftest import runtime_of
from tests.factories import make_app


def test_prints_the_same_document_as_the_api(app: Flask, runner: Any, client: Any, keys: Any) -> None:
    ids = make_app(app)
    result = runner.invoke(args=["sdk-config", str(ids["id"]), "--platform", "ios", "--sdk", "campaign-standard"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    api = client.get(
        f"/api/v1/apps/{ids['id']}/sdk-config?platform=ios&sdk=campaign-standard", headers=keys.marketer
    ).json
    assert document == api
    assert document["configuration"]["experienceCloud.server"] == "push.example.test"
    assert result.stderr == ""


def test_finds_the_app_by_name_and_writes_a_file(app: Flask, runner: Any, tmp_path: Path) -> None:
    ids = make_app(app, name="Shop 2")
    out = tmp_path / "shop.json"
    args = ["sdk-config", "Shop 2", "--platform", "android", "--sdk", "campaign-classic", "--out", str(out)]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and f"to {out}" in result.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["app_id"] == ids["id"]
    assert document["configuration"]["campaignclassic.android.integrationKey"] == ids["android_key"]
    assert "CampaignClassic.registerDevice" in document["snippets"]["kotlin"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["999999", "--platform", "ios", "--sdk", "edge"], "Error: no app with id or name '999999'"),
        (["Nope", "--platform", "ios", "--sdk", "edge"], "Error: no app with id or name 'Nope'"),
        (["{id}", "--platform", "windows", "--sdk", "edge"], "'windows' is not one of 'ios', 'android'"),
        (["{id}", "--platform", "ios", "--sdk", "adobe"], "'adobe' is not one of"),
        (["{id}", "--sdk", "edge"], "Missing option '--platform'"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(app: Flask, runner: Any, args: list[str], message: str) -> None:
    ids = make_app(app)
    result = runner.invoke(args=["sdk-config", *(a.format(id=ids["id"]) for a in args)])
    assert result.exit_code != 0 and message in result.output
    assert result.stdout == ""


def test_an_app_without_the_identifier_says_what_to_set(app: Flask, runner: Any) -> None:
    ids = make_app(app)
    with runtime_of(app).sessions.begin() as session:
        from store.models import App

        session.get(App, ids["id"]).edge_config_id = None
    result = runner.invoke(args=["sdk-config", str(ids["id"]), "--platform", "android", "--sdk", "edge"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: app {ids['id']} (Shop) has no edge_config_id: it is edge.configId; "
        f"set it with PATCH /api/v1/apps/{ids['id']}"
    ]


@pytest.fixture
def runner_without_public_url(settings_overrides: dict[str, Any], app: Flask) -> Iterator[Any]:
    other = create_app(overrides={**settings_overrides, "public_url": ""})
    yield other.test_cli_runner()
    runtime_of(other).engine.dispose()


def test_a_missing_public_url_is_a_clear_error(app: Flask, runner_without_public_url: Any, tmp_path: Path) -> None:
    ids = make_app(app)
    out = tmp_path / "never.json"
    args = ["sdk-config", str(ids["id"]), "--platform", "ios", "--sdk", "edge", "--out", str(out)]
    result = runner_without_public_url.invoke(args=args)
    assert result.exit_code == 1 and not out.exists()
    assert result.stderr.startswith("Error: PUSHGATE_PUBLIC_URL is not set: set it to the public base URL")
    assert len(result.stderr.strip().splitlines()) == 1


def test_warnings_go_to_stderr(settings_overrides: dict[str, Any], app: Flask) -> None:
    ids = make_app(app)
    other = create_app(overrides={**settings_overrides, "public_url": "http://push.example.test:8080"})
    try:
        result = other.test_cli_runner().invoke(
            args=["sdk-config", str(ids["id"]), "--platform", "ios", "--sdk", "edge"]
        )
    finally:
        runtime_of(other).engine.dispose()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["configuration"]["edge.domain"] == "push.example.test:8080"
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(line.startswith("warning: ") for line in warnings)

"""``PUSHGATE_LOG_FORMAT=json`` on a real ``flask run``: every stderr line is one JSON object, with
no colour codes (werkzeug's included), and lines name the request or the delivery they belong to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.conftest import Keys
from tests.factories import make_app
from tests.functional.test_entry_points import ROOT, gateway_env, stop
from tests.functional.test_push_end_to_end import free_port, serve_first_request
from tests.waiting import wait_until


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_json_lines_name_their_request_and_delivery(
    app: Flask, keys: Keys, settings_overrides: dict[str, Any], tmp_path: Path
) -> None:
    app_id = make_app(app)["id"]
    port = free_port()
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--port", str(port)],
            cwd=ROOT,
            env=gateway_env(settings_overrides, tmp_path / "gw", PUSHGATE_LOG_FORMAT="json"),
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        serve_first_request(process, port)
        base = f"http://127.0.0.1:{port}/api/v1"
        made = httpx.post(
            f"{base}/keys",
            json={"name": "reporting", "role": "viewer"},
            headers={**keys.admin, "X-Request-ID": "ops-check-1"},
        )
        assert made.status_code == 201 and made.headers["X-Request-ID"] == "ops-check-1"
        body = {"app_id": app_id, "name": "nobody", "target": {"all": True}, "message": {"title": "t", "body": "b"}}
        delivery = httpx.post(f"{base}/deliveries", json=body, headers=keys.marketer).json()
        done = f"delivery {delivery['id']} completed"
        wait_until(lambda: done in stderr.read_text(), 30, interval=0.1, message=stderr.read_text)
    finally:
        stop(process)
    text = stderr.read_text()
    assert "\x1b" not in text
    lines = json_lines(stderr)  # each line parses, or this fails
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    by_message = {line["message"]: line for line in lines}
    created = next(line for line in lines if line["logger"] == "pushgate.api.keys")
    assert created["request_id"] == "ops-check-1" and "delivery_id" not in created
    assert by_message[done]["delivery_id"] == delivery["id"]
    assert any(line["logger"] == "werkzeug" and "development server" in line["message"] for line in lines)

"""Every console page answers garbage in its query string with a page (2xx, 3xx or 4xx), never a
500: each GET route, signed in as an admin, with hostile values in every parameter the pages read."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from tests.gateway.console.conftest import ConsoleClient

HOSTILE = ["abc", "-1", "0", "9" * 40, "\x00", "%", "\uff11\uff12", " 7 ", "=cmd|' /C calc'!A0", "x" * 5000]
NAMES = [
    "after", "before", "app_id", "app", "status", "platform", "job", "proofs", "segment_id", "external_id",
    "email", "ecid", "token", "profile", "failure_type", "failure_reason", "order", "sdk", "mode", "next",
]  # fmt: skip


def _get_routes(app: Flask) -> list[str]:
    paths = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/console/") or "GET" not in (rule.methods or set()) or "static" in rule.endpoint:
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<int:{argument}>", "1").replace(f"<path:{argument}>", "someone@example.com")
            path = path.replace(f"<{argument}>", "x")
        paths.append(path)
    return sorted(set(paths))


@pytest.mark.parametrize("value", HOSTILE)
def test_no_console_page_fails_on_garbage_parameters(
    app: Flask, console_as: Callable[[str], ConsoleClient], value: str
) -> None:
    admin = console_as("admin")
    for path in _get_routes(app):
        response = admin.get(path, query_string={name: value for name in NAMES})
        assert response.status_code < 500, (path, value, response.status_code)

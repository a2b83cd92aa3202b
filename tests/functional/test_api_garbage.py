"""Every route of the JSON API, fed garbage: never a 5xx, whatever the path ids, query or body.

Routes are read from the app's URL map, so a new endpoint is covered the day it is added.
"""

from __future__ import annotations

import re
from itertools import product
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Keys

PATH_VALUES = ("0", "1", "999999999", "9223372036854775808", "segments", "nope", "%00", "..%2f..")
QUERIES = (
    "",
    "?limit=abc&cursor=%ff%fe",
    "?limit=-1&status=%00&platform=windows&sdk=x&job=" + "j" * 300,
    "?cursor=djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5&segment_id=" + "s" * 1000 + "&app_id=-5",
)
BODIES: tuple[tuple[str | None, bytes], ...] = (
    (None, b""),
    ("application/json", b"{"),
    ("application/json", b"[]"),
    ("application/json", b'{"retry_failed": "yes", "force": 1, "streams": {"a": 1}, "app_id": 1e400}'),
    ("application/json", b'{"a":' * 500 + b"1" + b"}" * 500),
    ("text/plain", "\udcff".encode("utf-8", "surrogatepass")),
)


def _api_routes(app: Flask) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, rule.rule))
    return routes


def _fill(rule: str, value: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?[a-z_]+>", value, rule)


def test_the_api_has_routes_to_try(app: Flask) -> None:
    routes = _api_routes(app)
    assert len(routes) > 30 and ("POST", "/api/v1/sync/<job>/run") in routes


@pytest.mark.slow
def test_garbage_never_gets_a_5xx(app: Flask, client: FlaskClient, keys: Keys) -> None:
    failures: list[str] = []
    for method, rule in _api_routes(app):
        for value, query in product(PATH_VALUES, QUERIES):
            if method == "DELETE" and value == "1":
                continue  # DELETE /keys/1 would revoke the key this test sends
            path = _fill(rule, value) + query
            bodies = BODIES if method in ("POST", "PUT", "PATCH", "DELETE") else BODIES[:1]
            for content_type, body in bodies:
                headers: dict[str, Any] = dict(keys.admin)
                if content_type:
                    headers["Content-Type"] = content_type
                response = client.open(path, method=method, data=body, headers=headers)
                response.get_data()  # a streamed answer (CSV) fails while it is read, if it fails
                response.close()
                if response.status_code >= 500:
                    failures.append(f"{method} {path[:120]} [{content_type}] -> {response.status_code}")
            if "<" not in rule:
                break  # no path parameter: one round of queries is enough
    assert not failures, "\n".join(failures[:20])

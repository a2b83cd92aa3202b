"""Request ids: in every answer's ``X-Request-ID``, in error bodies and pages, in the request's log
records; an incoming id is kept only when it is sane."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core import logs
from tests.conftest import Keys

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/healthz", 200),
        ("/r/?id=h1,1,1", 200),  # the SDKs' tracking: always an empty 200
        ("/api/v1/apps", 401),
        ("/api/v1/nothing-here", 404),
        ("/console/sign-in", 200),
    ],
)
def test_every_answer_carries_a_new_id(client: FlaskClient, path: str, status: int) -> None:
    first, second = client.get(path), client.get(path)
    assert first.status_code == status
    assert GENERATED.fullmatch(first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("3f2a9c0d4e5b6a7f8091a2b3c4d5e6f7", True),  # nginx's $request_id
        ("5b0e6c44-2c9f-4d7c-9a40-6b1c2f8f0e11", True),
        ("Root=1-67891233-abcdef012345678912345678", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("two words", False),
        ("<script>", False),
        ("line\\nbreak", False),
        ("", False),
    ],
)
def test_an_incoming_id_is_kept_only_when_sane(client: FlaskClient, given: str, kept: bool) -> None:
    answer = client.get("/healthz", headers={"X-Request-ID": given})
    if kept:
        assert answer.headers["X-Request-ID"] == given
    else:
        assert GENERATED.fullmatch(answer.headers["X-Request-ID"])


def test_error_bodies_name_the_request(client: FlaskClient, keys: Keys) -> None:
    answers = [
        client.get("/api/v1/nothing-here", headers={"X-Request-ID": "req-404"}),  # werkzeug's HTTPException
        client.get("/api/v1/apps", headers={"X-Request-ID": "req-401"}),  # a ClientError
        client.get("/api/v1/apps?cursor=nonsense", headers={**keys.viewer, "X-Request-ID": "req-400"}),
    ]
    for answer in answers:
        body = answer.json
        assert body is not None and set(body) >= {"error", "message", "request_id"}
        assert body["request_id"] == answer.headers["X-Request-ID"] == f"req-{answer.status_code}"


def test_rate_limited_and_unexpected_errors_name_the_request(
    gateway_with: Callable[..., Flask], keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    limited = gateway_with(rate_limit_api="1/minute")

    @limited.get("/boom")
    def boom() -> str:
        logging.getLogger("pushgate.test").info("about to fail")
        raise RuntimeError("a bug")

    client = limited.test_client()
    assert client.get("/api/v1/apps", headers=keys.viewer).status_code == 200
    refused = client.get("/api/v1/apps", headers={**keys.viewer, "X-Request-ID": "req-429"})
    assert (refused.status_code, refused.json["request_id"]) == (429, "req-429")
    with caplog.at_level(logging.INFO):
        failed = client.get("/boom", headers={"X-Request-ID": "req-500"})
    assert (failed.status_code, failed.json["error"], failed.json["request_id"]) == (500, "internal_error", "req-500")
    made_during = [r for r in caplog.records if r.name in ("pushgate.test", "pushgate")]
    assert [r.getMessage() for r in made_during] == ["about to fail", "unexpected error on GET /boom (request req-500)"]
    assert all(logs.record_context(r) == {"request_id": "req-500"} for r in made_during)
    assert logs.context() == {}  # nothing is left behind once the request is over


def test_the_console_error_page_shows_the_request_id(client: FlaskClient) -> None:
    page = client.get("/console/no-such-page", headers={"X-Request-ID": "req-page"})
    assert page.status_code == 404
    assert "Request id: <code>req-page</code>" in page.get_data(as_text=True)


def test_the_openapi_error_schema_declares_the_request_id(client: FlaskClient) -> None:
    error = client.get("/api/v1/openapi.json").json["components"]["schemas"]["Error"]
    assert "request_id" in error["properties"]

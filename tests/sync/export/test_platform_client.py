"""The Platform client against scripted answers (httpx.MockTransport): IMS token caching, request
packing under 1 MB, 207 partial results, Retry-After back-off, error translation, batch polling."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import Settings, load_settings
from core.errors import PermanentError, RetryableError
from sync.platform import errors
from sync.platform.batch import BatchIngestion, BatchStillRunning, JsonLinesFiles
from sync.platform.client import Platform
from sync.platform.streaming import MAX_REQUEST_BYTES, Envelopes, StreamingSender, fits, request_body, request_size
from tests.values import ORG

SECRET = "s3cret-value-never-logged"


@pytest.fixture
def settings() -> Settings:
    return load_settings(
        {
            "aep_ims_url": "https://ims.test",
            "aep_platform_url": "https://platform.test",
            "aep_streaming_url": "https://dcs.test",
            "aep_client_id": "client-1",
            "aep_client_secret": SECRET,
            "aep_org_id": ORG,
            "aep_sandbox": "dev",
            "aep_tenant_id": "acme",
            "aep_inlet_id": "inlet-1",
        }
    )


class Adobe:
    """A scripted Adobe: IMS always answers; other calls pop ``answers`` in order."""

    def __init__(self, answers: list[Callable[[httpx.Request], httpx.Response]] | None = None) -> None:
        self.answers = list(answers or [])
        self.calls: list[httpx.Request] = []
        self.tokens = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ims/token/v3":
            self.tokens += 1
            return httpx.Response(
                200, json={"access_token": f"token-{self.tokens}", "token_type": "bearer", "expires_in": 86399}
            )
        self.calls.append(request)
        return self.answers.pop(0)(request)


def platform_for(settings: Settings, adobe: Adobe, sleeps: list[float] | None = None) -> Platform:
    return Platform(settings, transport=httpx.MockTransport(adobe), sleep=(sleeps if sleeps is not None else []).append)


def multi(
    answer: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], status: int = 207
) -> Callable[[httpx.Request], httpx.Response]:
    """A 207 answer computed from the request's messages."""

    def respond(request: httpx.Request) -> httpx.Response:
        messages = json.loads(request.content)["messages"]
        return httpx.Response(status, json={"inletId": "inlet-1", "batchId": "b", "responses": answer(messages)})

    return respond


def taken(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"xactionId": f"x:{n}"} for n, _ in enumerate(messages)]


def message(n: int, size: int = 100) -> bytes:
    return json.dumps({"n": n, "pad": "x" * size}).encode()


# -- IMS ----------------------------------------------------------------------------------------


def test_the_token_is_fetched_once_and_renewed_shortly_before_it_expires(settings: Settings) -> None:
    now = [1000.0]
    forms: list[dict[str, str]] = []

    def ims(request: httpx.Request) -> httpx.Response:
        forms.append(dict(httpx.QueryParams(request.content.decode())))
        return httpx.Response(200, json={"access_token": f"t{len(forms)}", "token_type": "bearer", "expires_in": 3600})

    with Platform(settings, transport=httpx.MockTransport(ims)) as platform:
        platform.tokens._clock = lambda: now[0]
        assert platform.tokens.token() == "t1"
        now[0] += 3600 - 301
        assert platform.tokens.token() == "t1"  # still more than 5 minutes left
        now[0] += 2
        assert platform.tokens.token() == "t2"
    assert forms[0] == {
        "grant_type": "client_credentials",
        "client_id": "client-1",
        "client_secret": SECRET,
        "scope": settings.aep_scopes,
    }


def test_calls_carry_adobes_headers_and_a_401_fetches_a_new_token_once(settings: Settings) -> None:
    adobe = Adobe(
        [
            lambda r: httpx.Response(401, json={"error_code": "401013", "message": "Oauth token is not valid"}),
            lambda r: httpx.Response(200, json={"ok": True}),
        ]
    )
    with platform_for(settings, adobe) as platform:
        response = platform.request("GET", platform.api("/data/foundation/catalog/dataSets"))
    assert response.json() == {"ok": True}
    assert [c.headers["Authorization"] for c in adobe.calls] == ["Bearer token-1", "Bearer token-2"]
    headers = adobe.calls[1].headers
    assert (headers["x-api-key"], headers["x-gw-ims-org-id"], headers["x-sandbox-name"]) == (
        "client-1",
        ORG,
        "dev",
    )


def test_refused_credentials_are_permanent_and_never_show_the_secret(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def ims(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"error": "invalid_client", "error_description": "invalid client_secret parameter"}
        )

    caplog.set_level(logging.DEBUG)
    with Platform(settings, transport=httpx.MockTransport(ims)) as platform, pytest.raises(PermanentError) as caught:
        platform.tokens.token()
    assert str(caught.value) == "POST https://ims.test/ims/token/v3: HTTP 400: invalid client_secret parameter"
    assert SECRET not in caplog.text and SECRET not in str(caught.value) and SECRET not in repr(settings)


def test_error_translation() -> None:
    request = httpx.Request("GET", "https://platform.test/x")
    busy = errors.from_response(httpx.Response(429, headers={"Retry-After": "7"}, request=request), "GET /x")
    assert isinstance(busy, RetryableError) and busy.retry_after == 7
    down = errors.from_response(httpx.Response(503, request=request, text="<html>down</html>"), "GET /x")
    assert isinstance(down, RetryableError) and str(down) == "GET /x: HTTP 503"
    bad = errors.from_response(
        httpx.Response(400, request=request, json={"title": "BadRequestError", "detail": "Title not unique"}), "POST /s"
    )
    assert isinstance(bad, PermanentError) and str(bad) == "POST /s: HTTP 400: Title not unique"
    assert isinstance(errors.from_response(httpx.Response(403, request=request), "GET /x"), PermanentError)
    lost = errors.from_transport(httpx.ConnectError("connection refused"), "POST /collection/batch/{inlet}")
    assert str(lost) == "POST /collection/batch/{inlet}: connection refused"
    assert (
        errors.retry_after(httpx.Response(503, headers={"Retry-After": "Thu, 01 Jan 1970 00:01:40 GMT"}), now=90) == 10
    )


# -- streaming ----------------------------------------------------------------------------------


def test_requests_are_packed_under_one_megabyte() -> None:
    envelopes = Envelopes(schema_id="https://ns.adobe.com/acme/schemas/1", dataset_id="ds1", org_id=ORG)
    wrapped = envelopes.wrap(b'{"_id":"a"}')
    parsed = json.loads(wrapped)
    assert parsed["header"]["datasetId"] == "ds1" and parsed["header"]["imsOrgId"] == ORG
    assert parsed["header"]["schemaRef"] == parsed["body"]["xdmMeta"]["schemaRef"]
    assert parsed["header"]["schemaRef"]["contentType"] == "application/vnd.adobe.xed-full+json;version=1"
    assert parsed["body"]["xdmEntity"] == {"_id": "a"}
    messages: list[bytes] = []
    requests: list[list[bytes]] = []
    size = 0
    for n in range(3000):
        item = envelopes.wrap(message(n, 900))
        if messages and not fits(size, len(messages), len(item)):
            requests.append(messages)
            messages, size = [], 0
        messages.append(item)
        size += len(item)
    requests.append(messages)
    assert len(requests) > 1
    for chunk in requests:
        body = request_body(chunk)
        assert len(body) == request_size(chunk) <= MAX_REQUEST_BYTES
        assert len(json.loads(body)["messages"]) == len(chunk)
    assert max(len(request_body(c)) for c in requests) > MAX_REQUEST_BYTES - 2000  # requests are filled


#: A record the Platform's XDM validation refuses, as a 207 reports it (Adobe's DCCS prefix).
INVALID = (
    "inletId: [9b0cb233972f3b0092992284c7353f5eead496218e8441a79b25e9421ea127f5] imsOrgId: "
    "[7BF122A65C5B3FE40A494026@AdobeOrg] Message is invalid: 1 schema violations found: "
    "#/timestamp: [2026-00-10T22:07:56Z] is not a valid date-time"
)


def test_a_207_resends_only_the_failed_messages(settings: Settings) -> None:
    def first(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        for n, _ in enumerate(messages):
            if n in (1, 3):
                answers.append({"statusCode": 503, "message": "Service Unavailable"})
            elif n == 4:
                answers.append({"statusCode": 400, "message": INVALID})
            else:
                answers.append({"xactionId": f"x:{n}"})
        return answers

    adobe = Adobe([multi(first), multi(taken)])
    sleeps: list[float] = []
    with platform_for(settings, adobe, sleeps) as platform:
        result = StreamingSender(platform, "inlet-1").send([message(n) for n in range(6)])
    assert sorted(result.accepted) == [0, 1, 2, 3, 5]
    assert result.refused == {4: f"HTTP 400: {INVALID}"}
    assert result.setup == {} and result.unresolved == {} and result.retried == 2 and result.attempts == 2
    resent = [m["n"] for m in json.loads(adobe.calls[1].content)["messages"]]
    assert resent == [1, 3]
    assert adobe.calls[0].url.path == "/collection/batch/inlet-1"
    assert adobe.calls[0].headers["Authorization"] == "Bearer token-1"
    assert len(sleeps) == 1


def test_429_and_503_wait_what_retry_after_asks_then_succeed(settings: Settings) -> None:
    adobe = Adobe(
        [
            lambda r: httpx.Response(429, headers={"Retry-After": "3"}, json={"message": "Too many requests"}),
            lambda r: httpx.Response(503, headers={"Retry-After": "5"}),
            lambda r: httpx.Response(503),
            multi(taken),
        ]
    )
    sleeps: list[float] = []
    with platform_for(settings, adobe, sleeps) as platform:
        result = StreamingSender(platform, "inlet-1").send([message(n) for n in range(4)])
    assert sorted(result.accepted) == [0, 1, 2, 3] and result.attempts == 4 and result.retried == 12
    assert sleeps[:2] == [3.0, 5.0]
    assert 0 < sleeps[2] <= 60  # no Retry-After: exponential back-off with jitter


def test_messages_still_failing_after_the_last_attempt_come_back_unresolved(settings: Settings) -> None:
    def half(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"xactionId": "x"} if m["n"] % 2 == 0 else {"statusCode": 500, "message": "boom"} for m in messages]

    adobe = Adobe([multi(half), *[multi(half)] * 2])
    with platform_for(settings, adobe) as platform:
        result = StreamingSender(platform, "inlet-1", attempts=3).send([message(n) for n in range(4)])
    assert sorted(result.accepted) == [0, 2]
    assert sorted(result.unresolved) == [1, 3]
    assert "2 of 2 messages failed (HTTP 500: boom)" in result.unresolved[1]


def test_a_request_the_platform_refuses_is_permanent(settings: Settings) -> None:
    adobe = Adobe([lambda r: httpx.Response(413, json={"title": "Payload Too Large"})])
    with platform_for(settings, adobe) as platform, pytest.raises(PermanentError, match="HTTP 413"):
        StreamingSender(platform, "inlet-1").send([message(1)])
    adobe = Adobe([lambda r: httpx.Response(207, json={"responses": []})])
    with platform_for(settings, adobe) as platform, pytest.raises(PermanentError, match="0 results for 1 messages"):
        StreamingSender(platform, "inlet-1").send([message(1)])


INLET = "9b0cb233972f3b0092992284c7353f5eead496218e8441a79b25e9421ea127f5"
DCCS = f"inletId: [{INLET}] imsOrgId: [7BF122A65C5B3FE40A494026@AdobeOrg] "


@pytest.mark.parametrize(
    ("status", "message", "about", "hint"),
    [
        (503, DCCS + "Service is not currently available. Retry later", "transient", ""),
        (429, "Too many requests", "transient", ""),
        (None, "", "transient", ""),
        (400, INVALID, "record", ""),
        (400, DCCS + "Message is invalid", "record", ""),
        (400, "DCVS-1104-400 The value of #/commerce/order/priceTotal is not a number", "record", ""),
        (
            400,
            DCCS + "Real-Time Customer Profile would drop this record: the ExperienceEvent is 11000 bytes",
            "record",
            "",
        ),
        # Adobe's DCCS checks of the envelope's header: the same for every message of a stream.
        (
            400,
            DCCS + "Message has an unknown dataset id [5f3e2a1b9c8d7e6f5a4b3c2d] in the header",
            "setup",
            "provision",
        ),
        (400, DCCS + "Message has unknown xdm format", "setup", "provision"),
        (404, DCCS + "Dataset 5f3e2a1b9c8d7e6f5a4b3c2d is not found", "setup", "provision"),
        (400, DCCS + "Message has an absent or wrong ims org in the header", "setup", "PUSHGATE_AEP_ORG_ID"),
        (404, f"inletId: [{INLET}] Inlet not found", "setup", "PUSHGATE_AEP_INLET_ID"),
        (403, f"[{INLET}] Ims service token is invalid", "setup", "PUSHGATE_AEP_CLIENT_SECRET"),
        (400, DCCS + "Payload header source must be an object with a name", "setup", "PUSHGATE_AEP_*"),
        (404, DCCS + "Message is invalid", "setup", "PUSHGATE_AEP_*"),  # a 404 is never the record's
    ],
)
def test_only_the_records_own_faults_are_the_records(status: int | None, message: str, about: str, hint: str) -> None:
    verdict = errors.judge(status, message)
    assert verdict.about == about
    if hint == "provision":
        assert "run `flask --app wsgi sync provision`, then export again" in verdict.hint
    else:
        assert hint in verdict.hint


def test_a_207_refusing_the_set_up_is_final_and_sends_nothing_again(settings: Settings) -> None:
    unknown = DCCS + "Message has an unknown dataset id [5f3e2a1b9c8d7e6f5a4b3c2d] in the header"

    def answer(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"xactionId": "x:0"},
            {"statusCode": 503, "message": "Service Unavailable"},
            {"statusCode": 400, "message": unknown},
            {"statusCode": 400, "message": INVALID},
        ]

    adobe = Adobe([multi(answer)])
    with platform_for(settings, adobe) as platform:
        result = StreamingSender(platform, "inlet-1").send([message(n) for n in range(4)])
    assert result.accepted == [0] and result.refused == {3: f"HTTP 400: {INVALID}"}
    assert list(result.setup) == [2] and result.setup[2].startswith(f"HTTP 400: {unknown}; the dataset or schema")
    assert result.setup[2].endswith("run `flask --app wsgi sync provision`, then export again")
    assert list(result.unresolved) == [1] and "not sent again after a set-up error" in result.unresolved[1]
    assert result.attempts == 1 and len(adobe.calls) == 1


def test_a_request_refused_as_a_whole_says_what_to_fix(settings: Settings) -> None:
    problem = "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"
    gone = {
        "type": problem,
        "status": 404,
        "title": "Not Found",
        "report": {"message": f"inletId: [{INLET}] Inlet not found"},
    }
    adobe = Adobe([lambda r: httpx.Response(404, json=gone)])
    with platform_for(settings, adobe) as platform, pytest.raises(PermanentError) as caught:
        StreamingSender(platform, "inlet-1").send([message(1)])
    assert str(caught.value) == (
        f"POST /collection/batch/{{inlet}}: HTTP 404: inletId: [{INLET}] Inlet not found; "
        "check PUSHGATE_AEP_INLET_ID (the streaming source's inlet id)"
    )
    dataset = {
        "type": "/placeholder/type/uri",
        "status": 404,
        "title": "NotFoundError",
        "detail": "Dataset 5f3e2a1b9c8d7e6f5a4b3c2d is not found",
    }
    adobe = Adobe([lambda r: httpx.Response(404, json=dataset)])
    with platform_for(settings, adobe) as platform, pytest.raises(PermanentError) as caught:
        BatchIngestion(platform).create("5f3e2a1b9c8d7e6f5a4b3c2d")
    assert str(caught.value).startswith("POST /data/foundation/import/batches: HTTP 404: Dataset 5f3e")
    assert str(caught.value).endswith("run `flask --app wsgi sync provision`, then export again")


def test_lost_connections_are_retried(settings: Settings) -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    adobe = Adobe([lost, multi(taken)])
    with platform_for(settings, adobe) as platform:
        result = StreamingSender(platform, "inlet-1").send([message(1)])
    assert result.accepted == [0] and result.attempts == 2


# -- batch ingestion ----------------------------------------------------------------------------


def test_json_lines_files_rotate_before_the_size_limit(tmp_path: Path) -> None:
    with JsonLinesFiles(file_bytes=250, directory=tmp_path) as files:
        for n in range(10):
            files.write(message(n, 50))
        files.close()
        sizes = [p.stat().st_size for p in files.paths]
        lines = [line for p in files.paths for line in p.read_bytes().splitlines()]
        assert len(files.paths) > 1 and max(sizes) <= 250
        assert [json.loads(line)["n"] for line in lines] == list(range(10))
    assert not any(tmp_path.iterdir())


def test_a_batch_is_polled_until_its_status_is_final(settings: Settings) -> None:
    statuses = iter(["processing", "staging", "success"])
    adobe = Adobe([lambda r: httpx.Response(200, json={"b1": {"status": next(statuses)}})] * 3)
    sleeps: list[float] = []
    with platform_for(settings, adobe, sleeps) as platform:
        assert BatchIngestion(platform, poll_first=1).wait("b1") == ("success", "")
    assert sleeps == [1, 2]
    failed = {"b2": {"status": "failed", "errors": [{"code": "INGEST-1555-400", "description": "missing _id"}]}}
    adobe = Adobe([lambda r: httpx.Response(200, json=failed)])
    with platform_for(settings, adobe) as platform:
        assert BatchIngestion(platform).wait("b2") == ("failed", "missing _id")
    now = [0.0]
    adobe = Adobe([lambda r: httpx.Response(200, json={"b3": {"status": "processing"}})] * 10)

    def slow_sleep(seconds: float) -> None:
        now[0] += seconds

    with (
        Platform(settings, transport=httpx.MockTransport(adobe), sleep=slow_sleep) as platform,
        pytest.raises(BatchStillRunning, match="still processing"),
    ):
        BatchIngestion(platform, poll_first=10, timeout=30, clock=lambda: now[0]).wait("b3")

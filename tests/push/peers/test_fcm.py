"""The FCM emulator speaks Google's protocol: the OAuth JWT-bearer grant and HTTP v1
``messages:send`` with Google's error bodies, over TLS with HTTP/2 (and HTTP/1.1)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from google.auth import crypt
from google.auth import jwt as google_jwt

from push.peers import fcm
from push.peers.fcm import FCM_ERROR_TYPE, TOKEN_PREFIXES, FcmEmulator
from push.peers.tls import LocalTLS, client_context
from push.providers.base import PushMessage
from push.providers.fcm import FcmProvider
from tests.values import FCM_TOKEN, fcm_token

if TYPE_CHECKING:  # the fixtures module is loaded by pytest_plugins, not imported (assertion rewriting)
    from tests.push.fcm_fixtures import FcmAccounts, Loop

pytest_plugins = ["tests.push.fcm_fixtures"]

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: A Firebase installation id (FID): what comes before ``:APA91b`` in a registration token.
FID = fcm_token("installation").split(":")[0]


@pytest.fixture(scope="module")
def http(fcm_tls: LocalTLS) -> Iterator[httpx.Client]:
    """One HTTP/2 client for the module (a trust store costs about 40 ms to load)."""
    with httpx.Client(http2=True, verify=fcm_tls.client_context(), timeout=5) as client:
        yield client


def assertion(account: dict[str, Any], **claims: Any) -> str:
    """A signed JWT-bearer assertion as google-auth makes it; ``claims`` override or add (None drops)."""
    now = int(time.time())
    payload = {
        "iss": account["client_email"],
        "aud": "https://oauth2.googleapis.com/token",
        "scope": SCOPE,
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    payload = {key: value for key, value in payload.items() if value is not None}
    signer = crypt.RSASigner.from_service_account_info(account)
    return google_jwt.encode(signer, payload).decode()


def grant(http: httpx.Client, emulator: FcmEmulator, account: dict[str, Any], **claims: Any) -> httpx.Response:
    form = {"grant_type": JWT_BEARER, "assertion": assertion(account, **claims)}
    return http.post(emulator.token_url, data=form)


def bearer(http: httpx.Client, emulator: FcmEmulator, account: dict[str, Any]) -> dict[str, str]:
    response = grant(http, emulator, account)
    assert response.status_code == 200, response.text
    return {"authorization": f"Bearer {response.json()['access_token']}"}


def send_url(emulator: FcmEmulator, project: str = "demo-project") -> str:
    return f"{emulator.base_url}/v1/projects/{project}/messages:send"


def send(http: httpx.Client, emulator: FcmEmulator, headers: dict[str, str], body: Any) -> httpx.Response:
    return http.post(send_url(emulator), json=body, headers=headers)


def error_of(response: httpx.Response) -> tuple[int, str, str | None, str]:
    """(code, status, FcmError errorCode, message) of a Google error body."""
    error = response.json()["error"]
    codes = [d["errorCode"] for d in error.get("details", []) if d["@type"] == FCM_ERROR_TYPE]
    return error["code"], error["status"], codes[0] if codes else None, error["message"]


# -- OAuth ------------------------------------------------------------------------------------


def test_token_endpoint_grants_a_bearer_token_over_http1(
    fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts, fcm_tls: LocalTLS
) -> None:
    # google-auth refreshes tokens with requests, which speaks HTTP/1.1 only.
    with httpx.Client(verify=fcm_tls.client_context()) as http1:
        response = grant(http1, fcm_emulator, fcm_accounts.good)

    assert response.status_code == 200 and response.http_version == "HTTP/1.1"
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert (body["expires_in"], body["token_type"]) == (3600, "Bearer")


def test_token_endpoint_accepts_its_own_url_as_audience(
    http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts
) -> None:
    assert grant(http, fcm_emulator, fcm_accounts.good, aud=fcm_emulator.token_url).status_code == 200


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"aud": "https://example.com/token"}, "invalid_grant", "Failed audience check"),
        ({"iss": "nobody@demo-project.iam.gserviceaccount.com"}, "invalid_grant", "account not found"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "invalid_grant", "short-lived"),
        ({"exp": int(time.time()) + 7200}, "invalid_grant", "short-lived"),
        ({"scope": "https://www.googleapis.com/auth/userinfo.email"}, "invalid_scope", "Invalid OAuth scope"),
        ({"scope": None}, "invalid_scope", "Invalid OAuth scope"),
    ],
)
def test_token_endpoint_refuses_bad_assertions_like_google(
    http: httpx.Client,
    fcm_emulator: FcmEmulator,
    fcm_accounts: FcmAccounts,
    claims: dict[str, Any],
    error: str,
    description: str,
) -> None:
    response = grant(http, fcm_emulator, fcm_accounts.good, **claims)

    assert response.status_code == 400
    assert response.json()["error"] == error
    assert description in response.json()["error_description"]


def test_token_endpoint_checks_the_signature(
    http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts
) -> None:
    response = grant(http, fcm_emulator, fcm_accounts.wrong_key)  # same email, another key

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}


def test_token_endpoint_wants_the_jwt_bearer_grant(
    http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts
) -> None:
    form = {"grant_type": "client_credentials", "assertion": assertion(fcm_accounts.good)}

    response = http.post(fcm_emulator.token_url, data=form)

    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


def test_token_endpoint_failure_can_be_injected(
    http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts
) -> None:
    fcm_emulator.fail_token_endpoint(503)
    assert grant(http, fcm_emulator, fcm_accounts.good).status_code == 503
    fcm_emulator.fail_token_endpoint(None)
    assert grant(http, fcm_emulator, fcm_accounts.good).status_code == 200


# -- messages:send ----------------------------------------------------------------------------


def test_send_over_http2_answers_the_message_name_and_records_it(
    http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts
) -> None:
    message = {"token": FCM_TOKEN, "data": {"k": "v"}, "android": {"priority": "high", "ttl": "60s"}}

    response = send(http, fcm_emulator, bearer(http, fcm_emulator, fcm_accounts.good), {"message": message})

    assert response.status_code == 200 and response.http_version == "HTTP/2"
    name = response.json()["name"]
    assert re.fullmatch(r"projects/demo-project/messages/0:\d+%[0-9a-f]{16}", name)
    [record] = fcm_emulator.inbox.items("android")
    assert record["token"] == FCM_TOKEN and record["payload"] == message
    assert (record["status"], record["reason"], record["validate_only"]) == (200, None, False)
    assert name.endswith(record["message_id"]) and record["received_at"]
    assert "authorization" not in record["headers"]


def test_send_accepts_fid_and_validate_only(
    http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts
) -> None:
    headers = bearer(http, fcm_emulator, fcm_accounts.good)

    fid = send(http, fcm_emulator, headers, {"message": {"fid": FID}})
    dry = send(http, fcm_emulator, headers, {"message": {"token": FCM_TOKEN}, "validate_only": True})

    assert fid.status_code == 200
    assert dry.json() == {"name": "projects/demo-project/messages/fake_message_id"}
    assert [(r["token"], r["validate_only"]) for r in fcm_emulator.inbox.items("android")] == [
        (FID, False),
        (FCM_TOKEN, True),
    ]


def test_send_needs_a_bearer_token_issued_for_the_project(
    http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts
) -> None:
    body = {"message": {"token": FCM_TOKEN}}
    headers = bearer(http, fcm_emulator, fcm_accounts.good)

    missing = send(http, fcm_emulator, {}, body)
    unknown = send(http, fcm_emulator, {"authorization": "Bearer ya29.made-up"}, body)
    other_project = http.post(send_url(fcm_emulator, "other-project"), json=body, headers=headers)

    assert error_of(missing)[:3] == error_of(unknown)[:3] == (401, "UNAUTHENTICATED", None)
    assert error_of(other_project)[:3] == (403, "PERMISSION_DENIED", None)
    assert [(r["status"], r["reason"]) for r in fcm_emulator.inbox.items("android")] == [
        (401, "UNAUTHENTICATED"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
    ]


def _data_of_size(size: int) -> dict[str, Any]:
    """A message whose payload (the message without its target, compact UTF-8 JSON) is ``size`` bytes."""
    overhead = len(json.dumps({"data": {"k": ""}}, separators=(",", ":")))
    return {"token": FCM_TOKEN, "data": {"k": "é" * ((size - overhead) // 2) + "x" * ((size - overhead) % 2)}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"message": {"data": {"k": "v"}}}, "Recipient of the message is not set."),
        ({"message": {"token": FCM_TOKEN, "topic": "news"}}, "oneof field 'target' is already set"),
        (
            {"message": {"token": FCM_TOKEN, "data": {"k": 1}}},
            "Invalid value at 'message.data[0].value' (TYPE_STRING), 1",
        ),
        ({"message": {"token": FCM_TOKEN, "data": {"from": "x"}}}, "Invalid data payload key: from"),
        ({"message": {"token": FCM_TOKEN, "data": {"google.x": "x"}}}, "Invalid data payload key: google.x"),
        ({"message": {"token": FCM_TOKEN, "colour": "red"}}, "Unknown name \"colour\" at 'message'"),
        ({"message": {"token": FCM_TOKEN, "android": {"priority": "urgent"}}}, "message.android.priority"),
        ({"message": {"token": FCM_TOKEN, "android": {"ttl": "1h"}}}, "message.android.ttl"),
        ({"message": {"token": FCM_TOKEN, "android": {"notification": {"visibility": "LOUD"}}}}, "visibility"),
        ({"message": {"token": FCM_TOKEN, "apns": {"payload": {"aps": "x"}}}}, "message.apns.payload.aps"),
        ({"message": {"token": FCM_TOKEN, "webpush": {"fcm_options": {"link": "http://x"}}}}, "HTTPS"),
        ({"message": {"token": FCM_TOKEN}, "dry_run": True}, 'Unknown name "dry_run"'),
        ({"message": _data_of_size(4097)}, "Message is too big"),
        ({"message": {"token": ""}}, "The registration token is not a valid FCM registration token"),
    ],
)
def test_send_validates_the_message_like_fcm(
    http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts, body: dict[str, Any], message: str
) -> None:
    response = send(http, fcm_emulator, bearer(http, fcm_emulator, fcm_accounts.good), body)

    code, status, _, text = error_of(response)
    assert (response.status_code, code, status) == (400, 400, "INVALID_ARGUMENT")
    assert message in text
    assert fcm_emulator.inbox.items("android")[0]["reason"] == "INVALID_ARGUMENT"


def test_payload_of_exactly_4096_bytes_is_accepted(
    http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts
) -> None:
    message = _data_of_size(4096)
    assert fcm.payload_size(message) == 4096

    response = send(http, fcm_emulator, bearer(http, fcm_emulator, fcm_accounts.good), {"message": message})

    assert response.status_code == 200


def test_malformed_json_is_invalid_argument(
    http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts
) -> None:
    headers = {**bearer(http, fcm_emulator, fcm_accounts.good), "content-type": "application/json"}

    response = http.post(send_url(fcm_emulator), content=b'{"message": ', headers=headers)

    assert error_of(response)[:2] == (400, "INVALID_ARGUMENT")


EXPECTED = {  # prefix -> (HTTP status, google status, errorCode, Retry-After given)
    "unregistered-": (404, "NOT_FOUND", "UNREGISTERED", False),
    "invalid-": (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", False),
    "mismatch-": (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", False),
    "quota-": (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", True),
    "unavailable-": (503, "UNAVAILABLE", "UNAVAILABLE", True),
    "internal-": (500, "INTERNAL", "INTERNAL", False),
    "thirdparty-": (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", False),
}


@pytest.mark.parametrize("prefix", list(EXPECTED))
def test_token_prefixes_inject_google_errors(
    http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts, prefix: str
) -> None:
    status, google_status, error_code, retry_after = EXPECTED[prefix]
    headers = bearer(http, fcm_emulator, fcm_accounts.good)

    first = send(http, fcm_emulator, headers, {"message": {"token": fcm_token(1, prefix=prefix)}})
    again = send(http, fcm_emulator, headers, {"message": {"token": fcm_token(1, prefix=prefix)}})

    for response in (first, again):  # not a fail-once prefix: every request fails
        assert error_of(response)[:3] == (status, google_status, error_code)
        assert response.headers.get("retry-after") == (str(fcm_emulator.peer.retry_after) if retry_after else None)
    if prefix == "invalid-":
        assert error_of(first)[3] == "The registration token is not a valid FCM registration token"
    assert [r["reason"] for r in fcm_emulator.inbox.items("android")] == [error_code, error_code]


@pytest.mark.parametrize("prefix", ["quota-once-", "unavailable-once-", "internal-once-"])
def test_fail_once_prefixes_fail_the_first_request_for_a_token_only(
    http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts, prefix: str
) -> None:
    headers = bearer(http, fcm_emulator, fcm_accounts.good)

    statuses = [
        send(http, fcm_emulator, headers, {"message": {"token": token}}).status_code
        for token in [fcm_token(seed, prefix=prefix) for seed in ("a", "a", "b", "a")]
    ]

    failed = TOKEN_PREFIXES[prefix].status
    assert statuses == [failed, 200, failed, 200]


def test_slow_prefix_answers_late(http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts) -> None:
    headers = bearer(http, fcm_emulator, fcm_accounts.good)

    started = time.monotonic()
    response = send(http, fcm_emulator, headers, {"message": {"token": fcm_token(1, prefix="slow-")}})

    assert response.status_code == 200
    assert time.monotonic() - started >= fcm_emulator.peer.slow_seconds


def test_prefix_table_in_the_docstring_matches_the_constant() -> None:
    rows = re.findall(r"^``([a-z-]+)``\s+(\d{3})\s+(\S+)?", fcm.__doc__ or "", re.MULTILINE)

    documented = [(prefix, int(status), code if code and code.isupper() else None) for prefix, status, code in rows]
    actual = [(prefix, injection.status, injection.error_code) for prefix, injection in TOKEN_PREFIXES.items()]
    assert documented == actual


def test_inbox_api_lists_and_clears(http: httpx.Client, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts) -> None:
    headers = bearer(http, fcm_emulator, fcm_accounts.good)
    tokens = [fcm_token(seed) for seed in ("a", "b", "c")]
    for token in tokens:
        send(http, fcm_emulator, headers, {"message": {"token": token}})

    listed = http.get(f"{fcm_emulator.base_url}/_emulator/inbox?limit=2").json()
    cleared = http.delete(f"{fcm_emulator.base_url}/_emulator/inbox")

    assert listed["count"] == 3 and [r["token"] for r in listed["items"]] == tokens[1:]
    assert cleared.status_code == 200 and fcm_emulator.inbox.count() == 0


def test_runs_as_a_process(tmp_path: Path, fcm_loop: Loop) -> None:
    account_file = tmp_path / "service-account.json"
    command = [sys.executable, "-m", "push.peers.fcm", "--port", "0", "--tls-dir", str(tmp_path / "tls")]
    command += ["--new-service-account", str(account_file), "--project", "proc-project"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base_url = re.search(r"listening on (\S+) ", line)
        assert base_url, line + (process.stderr.read() if process.stderr else "")
        account = json.loads(account_file.read_text())
        assert account["token_uri"] == f"{base_url.group(1)}/token"

        async def deliver() -> bool:
            provider = FcmProvider(account, endpoint=base_url.group(1), ca_bundle=tmp_path / "tls" / "ca.pem")
            try:
                [result] = await provider.send([PushMessage(1, FCM_TOKEN, {"data": {"k": "v"}})])
                return result.ok
            finally:
                await provider.close()

        assert fcm_loop.run(deliver())
        with httpx.Client(verify=client_context(tmp_path / "tls" / "ca.pem")) as http:
            inbox = http.get(f"{base_url.group(1)}/_emulator/inbox").json()
        assert [r["token"] for r in inbox["items"]] == [FCM_TOKEN]
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert process.returncode == 0

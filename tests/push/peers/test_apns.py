"""The APNs emulator on the wire, with a raw h2 client: exact frames, Apple's checks, injection, inbox."""

from __future__ import annotations

import json
import re
import socket
import ssl
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, Event, ResponseReceived, StreamEnded
from h2.settings import SettingCodes
from hyperframe.frame import Frame, SettingsFrame

import push.peers.apns as apns_module
from push.peers.apns import TOKEN_PREFIXES, ApnsEmulator
from push.peers.inbox import Inbox
from push.peers.tls import LocalTLS, client_context, local_tls
from tests.push.conftest import APNS_TOPIC, ApnsKey, make_apns_key
from tests.values import apns_token

GOOD_TOKEN = apns_token("emulator")


class RawClient:
    """A blocking HTTP/2 client over TLS that exposes every event (one per frame that carries one)."""

    def __init__(self, url: str, context: ssl.SSLContext) -> None:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 443
        self.sock = context.wrap_socket(socket.create_connection((host, port), timeout=5), server_hostname=host)
        self.first_bytes = b""
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.events: list[Event] = []
        self.closed = False

    def request(self, path: str, headers: dict[str, str], body: bytes = b"", method: str = "POST") -> int:
        stream_id = self.conn.get_next_available_stream_id()
        pseudo = [(":method", method), (":scheme", "https"), (":path", path), (":authority", "localhost")]
        self.conn.send_headers(stream_id, pseudo + list(headers.items()), end_stream=not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        return stream_id

    def read_until_ended(self, stream_id: int) -> list[Event]:
        while not any(isinstance(e, StreamEnded) and e.stream_id == stream_id for e in self.events):
            if not self.read():
                break
        return [e for e in self.events if getattr(e, "stream_id", None) == stream_id]

    def read(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            return False
        if not self.first_bytes:
            self.first_bytes = data
        self.events += self.conn.receive_data(data)
        self.sock.sendall(self.conn.data_to_send())
        return True

    def close(self) -> None:
        self.sock.close()


def provider_jwt(key: ApnsKey, *, issued_at: int | None = None, key_id: str | None = None) -> str:
    claims = {"iss": key.team_id, "iat": int(time.time()) if issued_at is None else issued_at}
    return jwt.encode(claims, key.private_pem, algorithm="ES256", headers={"kid": key_id or key.key_id})


def apns_headers(key: ApnsKey, **overrides: str | None) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "apns-topic": APNS_TOPIC,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "authorization": f"bearer {provider_jwt(key)}",
    }
    headers.update({name.replace("_", "-"): value for name, value in overrides.items()})
    return {k: v for k, v in headers.items() if v is not None}


@pytest.fixture
def raw(apns_peer: ApnsEmulator, apns_tls: LocalTLS) -> Iterator[RawClient]:
    client = RawClient(apns_peer.url, apns_tls.client_context())
    yield client
    client.close()


def answer(client: RawClient, stream_id: int) -> tuple[dict[str, str], list[DataReceived], list[Event]]:
    events = client.read_until_ended(stream_id)
    [response] = [e for e in events if isinstance(e, ResponseReceived)]
    data = [e for e in events if isinstance(e, DataReceived)]
    return dict(response.headers or []), data, events  # type: ignore[arg-type]


def post(
    client: RawClient,
    key: ApnsKey,
    token: str = GOOD_TOKEN,
    body: bytes | None = None,
    overrides: dict[str, str | None] | None = None,
    **headers: str | None,
) -> tuple[int, dict[str, Any] | None, dict[str, str], list[DataReceived]]:
    payload = b'{"aps":{"alert":"hi"}}' if body is None else body
    stream_id = client.request(f"/3/device/{token}", apns_headers(key, **(overrides or {}), **headers), payload)
    response, data, _ = answer(client, stream_id)
    parsed = json.loads(b"".join(e.data or b"" for e in data)) if data else None
    return int(response[":status"]), parsed, response, data


def test_first_settings_frame_announces_max_concurrent_streams(raw: RawClient) -> None:
    raw.read()
    frame, length = Frame.parse_frame_header(memoryview(raw.first_bytes[:9]))
    frame.parse_body(memoryview(raw.first_bytes[9 : 9 + length]))
    assert isinstance(frame, SettingsFrame)
    assert frame.settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 1000


def test_success_is_headers_with_end_stream_and_no_data(raw: RawClient, apns_key: ApnsKey) -> None:
    request_id = str(uuid.uuid4())
    stream_id = raw.request(
        f"/3/device/{GOOD_TOKEN}", apns_headers(apns_key, apns_id=request_id), b'{"aps":{"alert":"hi"}}'
    )

    headers, data, events = answer(raw, stream_id)

    assert headers == {":status": "200", "apns-id": request_id}
    assert data == []
    [response] = [e for e in events if isinstance(e, ResponseReceived)]
    assert response.stream_ended is not None  # END_STREAM on the HEADERS frame itself


def test_generated_apns_id_when_the_request_has_none(raw: RawClient, apns_key: ApnsKey) -> None:
    _, _, headers, _ = post(raw, apns_key)
    assert uuid.UUID(headers["apns-id"])


def test_error_is_headers_and_exactly_one_data_frame(raw: RawClient, apns_key: ApnsKey) -> None:
    status, body, headers, data = post(raw, apns_key, token=apns_token("gone", prefix="e4100000"))

    assert status == 410
    assert headers["content-type"] == "application/json"
    assert len(data) == 1
    assert data[0].stream_ended is not None  # END_STREAM on that one DATA frame
    assert body is not None
    assert body["reason"] == "Unregistered"
    assert abs(body["timestamp"] / 1000 - time.time()) < 60


@pytest.mark.parametrize(
    ("overrides", "body", "status", "reason"),
    [
        ({"apns_topic": None}, None, 400, "MissingTopic"),
        ({"apns_topic": "com.other.app"}, None, 400, "TopicDisallowed"),
        ({"apns_topic": APNS_TOPIC + ".voip", "apns_push_type": "voip"}, None, 200, None),
        ({"apns_push_type": "shout"}, None, 400, "InvalidPushType"),
        ({"apns_priority": "7"}, None, 400, "BadPriority"),
        ({"apns_push_type": "background", "apns_priority": "10"}, None, 400, "BadPriority"),
        ({"apns_push_type": "background", "apns_priority": None}, None, 400, "BadPriority"),
        ({"apns_push_type": "background", "apns_priority": "5"}, b'{"aps":{"content-available":1}}', 200, None),
        ({"apns_expiration": "tomorrow"}, None, 400, "BadExpirationDate"),
        ({"apns_expiration": "0"}, None, 200, None),
        ({"apns_collapse_id": "c" * 65}, None, 400, "BadCollapseId"),
        ({"apns_collapse_id": "c" * 64}, None, 200, None),
        ({"apns_id": "not-a-uuid"}, None, 400, "BadMessageId"),
        ({}, b"", 400, "PayloadEmpty"),
        ({}, b"{not json", 400, "BadPayload"),
        ({}, b"[1, 2]", 400, "BadPayload"),
        ({}, b'{"x":"' + b"y" * 4090 + b'"}', 413, "PayloadTooLarge"),
        ({"authorization": None}, None, 403, "MissingProviderToken"),
        ({"authorization": "bearer not.a.jwt"}, None, 403, "InvalidProviderToken"),
        ({"authorization": "basic dXNlcjpwYXNz"}, None, 403, "InvalidProviderToken"),
    ],
)
def test_apple_checks(
    raw: RawClient,
    apns_key: ApnsKey,
    overrides: dict[str, str | None],
    body: bytes | None,
    status: int,
    reason: str | None,
) -> None:
    got_status, got_body, _, data = post(raw, apns_key, body=body, overrides=overrides)

    assert (got_status, got_body["reason"] if got_body else None) == (status, reason)
    assert len(data) == (0 if status == 200 else 1)


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        ("ab" * 31, 400, "BadDeviceToken"),
        ("zz" * 32, 400, "BadDeviceToken"),
        ("abc" * 21, 400, "BadDeviceToken"),
        ("ab" * 100, 200, None),
    ],
)
def test_device_token_format(raw: RawClient, apns_key: ApnsKey, token: str, status: int, reason: str | None) -> None:
    got_status, body, _, _ = post(raw, apns_key, token=token)
    assert (got_status, body["reason"] if body else None) == (status, reason)


def test_method_and_path(raw: RawClient, apns_key: ApnsKey) -> None:
    stream_id = raw.request(f"/3/device/{GOOD_TOKEN}", apns_headers(apns_key), method="GET")
    headers, data, _ = answer(raw, stream_id)
    assert (headers[":status"], json.loads(data[0].data or b"")["reason"]) == ("405", "MethodNotAllowed")
    stream_id = raw.request("/2/device/x", apns_headers(apns_key), b"{}")
    headers, data, _ = answer(raw, stream_id)
    assert (headers[":status"], json.loads(data[0].data or b"")["reason"]) == ("404", "BadPath")
    status, body, _, _ = post(raw, apns_key, token="")
    assert (status, body) == (400, {"reason": "MissingDeviceToken"})


def test_provider_token_checks(raw: RawClient, apns_key: ApnsKey) -> None:
    expired = f"bearer {provider_jwt(apns_key, issued_at=int(time.time()) - 3700)}"
    unknown_key = f"bearer {provider_jwt(apns_key, key_id='UNKNOWN123')}"
    impostor = f"bearer {provider_jwt(make_apns_key())}"  # right kid and team, wrong signature

    for authorization, reason in [
        (expired, "ExpiredProviderToken"),
        (unknown_key, "InvalidProviderToken"),
        (impostor, "InvalidProviderToken"),
    ]:
        status, body, _, _ = post(raw, apns_key, authorization=authorization)
        assert (status, body) == (403, {"reason": reason})


def test_certificate_auth_without_a_bearer_token(
    apns_peer: ApnsEmulator, apns_tls: LocalTLS, apns_key: ApnsKey, tmp_path: Any
) -> None:
    issued = apns_tls.issue_client_cert(f"Apple Push Services: {APNS_TOPIC}")
    (tmp_path / "client.pem").write_bytes(issued.pem)
    context = apns_tls.client_context()
    context.load_cert_chain(tmp_path / "client.pem")
    client = RawClient(apns_peer.url, context)
    try:
        status, body, _, _ = post(client, apns_key, authorization=None, apns_topic=None)
    finally:
        client.close()

    assert (status, body) == (200, None)
    [record] = apns_peer.inbox.items("ios")
    assert (record["auth"], record["topic"]) == ("certificate", APNS_TOPIC)


def test_injected_errors_and_fail_once(raw: RawClient, apns_key: ApnsKey) -> None:
    for prefix, injection in TOKEN_PREFIXES.items():
        if injection.behaviour != "error":
            continue
        token = apns_token(prefix, prefix=prefix)
        status, body, _, _ = post(raw, apns_key, token=token)
        assert (status, body and body["reason"]) == (injection.status, injection.reason), prefix
        again, _, _, _ = post(raw, apns_key, token=token)
        assert again == (200 if injection.once else injection.status), prefix


def test_slow_token_is_answered_after_the_delay(apns_peer: ApnsEmulator, raw: RawClient, apns_key: ApnsKey) -> None:
    apns_peer.slow_delay = 0.3
    started = time.monotonic()
    slow = raw.request(f"/3/device/{apns_token('slow', prefix='d0000000')}", apns_headers(apns_key), b"{}")
    fast = raw.request(f"/3/device/{GOOD_TOKEN}", apns_headers(apns_key), b"{}")

    answer(raw, fast)
    assert time.monotonic() - started < 0.3
    assert [r["token"] for r in apns_peer.inbox.items("ios")] == [GOOD_TOKEN]
    headers, _, _ = answer(raw, slow)
    assert headers[":status"] == "200"
    assert time.monotonic() - started >= 0.3
    assert apns_peer.inbox.items("ios")[-1]["delayed"] == 0.3


def test_goaway_names_the_last_processed_stream(apns_peer: ApnsEmulator, raw: RawClient, apns_key: ApnsKey) -> None:
    first = raw.request(f"/3/device/{GOOD_TOKEN}", apns_headers(apns_key), b"{}")
    answer(raw, first)
    raw.request(f"/3/device/{apns_token('goaway', prefix='c0000000')}", apns_headers(apns_key), b"{}")

    while not any(isinstance(e, ConnectionTerminated) for e in raw.events) and raw.read():
        pass

    [goaway] = [e for e in raw.events if isinstance(e, ConnectionTerminated)]
    assert goaway.last_stream_id == first
    assert json.loads(goaway.additional_data or b"") == {"reason": "Shutdown"}
    assert [r["status"] for r in apns_peer.inbox.items("ios")] == [200, None]


def test_inbox_records_every_request_without_credentials(
    apns_peer: ApnsEmulator, raw: RawClient, apns_key: ApnsKey
) -> None:
    post(raw, apns_key, apns_collapse_id="k1")
    post(raw, apns_key, token=apns_token("bad", prefix="e4000000"))
    post(raw, apns_key, authorization=None)

    records = apns_peer.inbox.items("ios")

    assert [(r["status"], r["reason"]) for r in records] == [
        (200, None),
        (400, "BadDeviceToken"),
        (403, "MissingProviderToken"),
    ]
    assert all("authorization" not in r["headers"] for r in records)
    assert records[0]["payload"] == {"aps": {"alert": "hi"}}
    assert records[0]["headers"]["apns-collapse-id"] == "k1"
    assert (records[0]["key_id"], records[0]["team_id"]) == (apns_key.key_id, apns_key.team_id)
    assert records[0]["received_at"].endswith("+00:00")


def test_inbox_over_http(apns_peer: ApnsEmulator, raw: RawClient, apns_key: ApnsKey) -> None:
    post(raw, apns_key)
    other = apns_token("another device")
    post(raw, apns_key, token=other)

    stream_id = raw.request("/_emulator/inbox?limit=1", {}, method="GET")
    headers, data, _ = answer(raw, stream_id)
    listed = json.loads(b"".join(e.data or b"" for e in data))
    assert headers[":status"] == "200"
    assert [r["token"] for r in listed] == [other]

    answer(raw, raw.request("/_emulator/inbox", {}, method="DELETE"))
    assert apns_peer.inbox.count() == 0


def test_works_with_and_without_alpn(apns_peer: ApnsEmulator, apns_tls: LocalTLS, apns_key: ApnsKey) -> None:
    with_alpn = apns_tls.client_context()
    with_alpn.set_alpn_protocols(["h2"])
    for context in (with_alpn, apns_tls.client_context()):
        client = RawClient(apns_peer.url, context)
        try:
            assert post(client, apns_key)[0] == 200
        finally:
            client.close()


def test_token_prefixes_are_hex_and_documented() -> None:
    doc = apns_module.__doc__ or ""
    for prefix, injection in TOKEN_PREFIXES.items():
        assert re.fullmatch(r"[0-9a-f]{8}", prefix)
        assert re.search(rf"^{prefix}\s", doc, re.MULTILINE), prefix
        assert injection.description


def test_inbox_is_thread_safe_and_strips_credentials() -> None:
    inbox = Inbox(limit=10_000)
    tokens = [apns_token(i) for i in range(1000)]

    def add(platform: str) -> None:
        for i in range(1000):
            inbox.add(platform, {"token": tokens[i], "headers": {"Authorization": "secret", "apns-topic": "t"}})

    threads = [threading.Thread(target=add, args=(p,)) for p in ("ios", "android", "ios")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (inbox.count(), inbox.count("ios"), inbox.count("android")) == (3000, 2000, 1000)
    assert all(r["headers"] == {"apns-topic": "t"} and r["received_at"] for r in inbox.items("ios"))
    assert {r["platform"] for r in inbox.items()} == {"ios", "android"}
    inbox.items("ios")[0]["token"] = "changed"  # copies: the inbox is not modified through them
    assert inbox.items("ios")[0]["token"] == tokens[0]
    inbox.clear()
    assert inbox.items() == []


def test_local_tls_is_reused_and_private(tmp_path: Any) -> None:
    first = local_tls(tmp_path)
    ca = first.ca_path.read_bytes()
    second = local_tls(tmp_path)

    assert second.ca_path.read_bytes() == ca
    assert stat.S_IMODE(second.server_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca-key.pem").stat().st_mode) == 0o600
    assert first.server_context().verify_mode == ssl.CERT_NONE
    assert client_context(None).verify_mode == ssl.CERT_REQUIRED
    assert client_context(first.ca_path).cert_store_stats()["x509_ca"] >= 1

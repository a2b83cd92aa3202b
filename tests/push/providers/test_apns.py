"""ApnsProvider against the local APNs emulator: real TLS, real HTTP/2, the real aioapns client."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from push.peers.apns import ApnsEmulator
from push.peers.tls import LocalTLS
from push.providers.apns import ApnsProvider, CertificateCredentials, apns_id_for, parse_endpoint
from push.providers.apns_connection import STREAMS_PER_CONNECTION
from push.providers.base import ErrorKind, PushMessage, SendResult
from tests.push.conftest import APNS_TOPIC, make_apns_key
from tests.values import apns_token

Factory = Callable[..., ApnsProvider]


T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def token(number: int, prefix: str = "") -> str:
    """Device ``number``'s APNs token; ``prefix`` (see the emulator's ``TOKEN_PREFIXES``) forces an answer."""
    return apns_token(number, prefix=prefix)


def message(key: int, device: str, **headers: str) -> PushMessage:
    base = {"apns-topic": APNS_TOPIC, "apns-push-type": "alert", "apns-priority": "10"}
    return PushMessage(
        key=key,
        token=device,
        payload={"aps": {"alert": {"title": "Hi", "body": "there"}}, "_mId": key},
        headers={**base, **headers},
    )


async def send_all(provider: ApnsProvider, messages: Sequence[PushMessage]) -> dict[int, SendResult]:
    try:
        results = await provider.send(messages)
    finally:
        await provider.close()
    assert sorted(r.key for r in results) == sorted(m.key for m in messages)
    return {r.key: r for r in results}


def delivered(peer: ApnsEmulator) -> Counter[str]:
    return Counter(r["token"] for r in peer.inbox.items("ios") if r["status"] == 200)


def test_delivers_with_exact_headers_and_payload(apns_peer: ApnsEmulator, apns_provider_factory: Factory) -> None:
    expiration = str(int(time.time()) + 3600)
    sent = message(7, token(1), **{"apns-expiration": expiration, "apns-collapse-id": "promo-42"})

    results = run(send_all(apns_provider_factory(), [sent]))

    assert results[7].ok
    assert results[7].provider_message_id == apns_id_for(7)
    [record] = apns_peer.inbox.items("ios")
    assert record["status"] == 200
    assert record["token"] == token(1)
    assert record["payload"] == sent.payload
    assert record["auth"] == "token"
    headers = record["headers"]
    assert headers["apns-topic"] == APNS_TOPIC
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-expiration"] == expiration
    assert headers["apns-collapse-id"] == "promo-42"
    assert headers["apns-id"] == apns_id_for(7)
    assert "authorization" not in headers


def test_background_push_headers(apns_peer: ApnsEmulator, apns_provider_factory: Factory) -> None:
    silent = PushMessage(
        1,
        token(1),
        {"aps": {"content-available": 1}},
        {"apns-topic": APNS_TOPIC, "apns-push-type": "background", "apns-priority": "5"},
    )
    wrong = PushMessage(
        2,
        token(2),
        {"aps": {"content-available": 1}},
        {"apns-topic": APNS_TOPIC, "apns-push-type": "background", "apns-priority": "10"},
    )

    results = run(send_all(apns_provider_factory(), [silent, wrong]))

    assert results[1].ok
    assert results[2].error is not None
    assert (results[2].error.kind, results[2].error.reason) == (ErrorKind.PAYLOAD_REJECTED, "BadPriority")


@pytest.mark.parametrize(
    ("prefix", "kind", "reason", "status"),
    [
        ("e4000000", ErrorKind.TOKEN_INVALID, "BadDeviceToken", 400),
        ("e4000001", ErrorKind.TOKEN_INVALID, "DeviceTokenNotForTopic", 400),
        ("e4100000", ErrorKind.TOKEN_GONE, "Unregistered", 410),
        ("e4290000", ErrorKind.THROTTLED, "TooManyRequests", 429),
        ("e5000000", ErrorKind.UNAVAILABLE, "InternalServerError", 500),
        ("e5030000", ErrorKind.UNAVAILABLE, "ServiceUnavailable", 503),
    ],
)
def test_injected_errors_map_to_kinds(
    apns_peer: ApnsEmulator, apns_provider_factory: Factory, prefix: str, kind: ErrorKind, reason: str, status: int
) -> None:
    results = run(send_all(apns_provider_factory(), [message(1, token(1, prefix)), message(2, token(2))]))

    error = results[1].error
    assert error is not None
    assert (error.kind, error.reason, error.status) == (kind, reason, status)
    assert error.retryable == (kind in {ErrorKind.THROTTLED, ErrorKind.UNAVAILABLE})
    if status == 410:
        assert error.unregistered_at is not None
        assert abs(error.unregistered_at.timestamp() - time.time()) < 60
    assert results[2].ok


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [("f4290000", ErrorKind.THROTTLED), ("f5000000", ErrorKind.UNAVAILABLE), ("f5030000", ErrorKind.UNAVAILABLE)],
)
def test_fail_once_then_success(
    apns_peer: ApnsEmulator, apns_provider_factory: Factory, prefix: str, kind: ErrorKind
) -> None:
    device = token(5, prefix)

    async def twice() -> tuple[list[SendResult], list[SendResult]]:
        provider = apns_provider_factory()
        try:
            return await provider.send([message(1, device)]), await provider.send([message(1, device)])
        finally:
            await provider.close()

    first, second = run(twice())

    assert first[0].error is not None
    assert first[0].error.kind is kind
    assert second[0].ok
    assert [r["status"] for r in apns_peer.inbox.items("ios")] == [first[0].error.status, 200]
    # Both attempts carry the same apns-id: a re-send is recognisable.
    assert {r["apns_id"] for r in apns_peer.inbox.items("ios")} == {apns_id_for(1)}


def test_slow_answer_times_out_without_duplicates(apns_peer: ApnsEmulator, apns_provider_factory: Factory) -> None:
    """The late answer arrives while other requests are in flight on the same connection: it is
    dropped, the connection lives on and nothing is sent twice (aioapns alone re-sends them)."""
    apns_peer.slow_delay = 1.5
    slow = token(0, "d0000000")
    batch = [message(0, slow)] + [message(i, token(i)) for i in range(1, 51)]

    async def scenario() -> tuple[dict[int, SendResult], int, list[SendResult]]:
        provider = apns_provider_factory(timeout=1.0)
        try:
            first = {r.key: r for r in await provider.send(batch)}
            deliveries_after_batch = sum(delivered(apns_peer).values())
            # Keep requests in flight until well after the late answer came back.
            later: list[SendResult] = []
            key = 1000
            deadline = time.monotonic() + 1.0  # the late answer comes about 0.5 s from now
            while time.monotonic() < deadline:
                later += await provider.send([message(key + i, token(key + i)) for i in range(200)])
                key += 200
            return first, deliveries_after_batch, later
        finally:
            await provider.close()

    first, deliveries_after_batch, later = run(scenario())

    assert [k for k, r in first.items() if not r.ok] == [0]
    error = first[0].error
    assert error is not None
    assert (error.kind, error.reason) == (ErrorKind.TIMEOUT, "timeout")
    assert error.retryable
    assert deliveries_after_batch == 50
    assert all(r.ok for r in later)
    counts = delivered(apns_peer)
    assert counts[slow] == 1  # answered late, recorded once
    assert set(counts.values()) == {1}
    assert sum(counts.values()) == 51 + len(later)
    assert apns_peer.inbox.count("ios") == 51 + len(later)


def assert_each_good_token_once_or_reported(
    peer: ApnsEmulator, results: dict[int, SendResult], good: Sequence[PushMessage]
) -> None:
    """Every good message arrived exactly once, or did not arrive and says CONNECTION (retryable)."""
    counts = delivered(peer)
    for item in good:
        result = results[item.key]
        if result.ok:
            assert counts[item.token] == 1, item.token
        else:
            assert result.error is not None
            assert result.error.kind is ErrorKind.CONNECTION
            assert counts[item.token] == 0, item.token


def test_goaway_is_a_connection_error_and_nothing_is_duplicated(
    apns_peer: ApnsEmulator, apns_provider_factory: Factory
) -> None:
    """A token that makes every connection it touches go away: it ends as CONNECTION; requests on
    streams above the GOAWAY's last_stream_id (not processed) go out again on a new connection.

    It goes in the middle of the batch: the streams before it are answered before the GOAWAY. Sent
    first, it was the first stream of every connection it was retried on, so whether any other
    message got through depended on how the retries interleaved (about one run in ten failed)."""
    normal = [message(i, token(i)) for i in range(1, 51)]
    poison = message(0, token(0, "c0000000"))

    results = run(send_all(apns_provider_factory(), [*normal[:25], poison, *normal[25:]]))

    error = results[0].error
    assert error is not None
    assert (error.kind, error.reason) == (ErrorKind.CONNECTION, "connection_failed")
    assert error.retryable
    assert_each_good_token_once_or_reported(apns_peer, results, normal)
    assert any(r.ok for r in results.values())


def test_goaway_once_with_others_in_flight(apns_peer: ApnsEmulator, apns_provider_factory: Factory) -> None:
    batch = [message(0, token(0, "fc000000"))] + [message(i, token(i)) for i in range(1, 51)]

    results = run(send_all(apns_provider_factory(), batch))

    assert all(r.ok for r in results.values())
    counts = delivered(apns_peer)
    assert len(counts) == 51
    assert set(counts.values()) == {1}
    assert [r["status"] for r in apns_peer.inbox.items("ios") if r["token"] == token(0, "fc000000")] == [None, 200]


def test_sends_right_after_goaway_never_raise(apns_peer: ApnsEmulator, apns_provider_factory: Factory) -> None:
    """Requests keep starting while connections are torn down by GOAWAYs (where aioapns alone
    raises h2's ProtocolError out of send): every message gets a result, none arrives twice."""
    goaway = [message(i, token(i, "c0000000")) for i in range(3)]
    normal = [message(i, token(i)) for i in range(3, 303)]
    batch: list[PushMessage] = []
    for index, item in enumerate(normal):
        if index % 100 == 50:
            batch.append(goaway[index // 100])
        batch.append(item)

    results = run(send_all(apns_provider_factory(max_in_flight=8), batch))

    kinds = {r.error.kind for m in goaway if (r := results[m.key]).error is not None}
    assert kinds == {ErrorKind.CONNECTION}
    assert all(not results[m.key].ok for m in goaway)
    assert_each_good_token_once_or_reported(apns_peer, results, normal)


def test_wrong_signing_key_is_an_auth_error(apns_peer: ApnsEmulator, apns_provider_factory: Factory) -> None:
    impostor = make_apns_key()  # same key id and team, different key: the signature fails

    results = run(send_all(apns_provider_factory(token=impostor.credentials), [message(1, token(1))]))

    error = results[1].error
    assert error is not None
    assert (error.kind, error.reason, error.status) == (ErrorKind.AUTH, "InvalidProviderToken", 403)
    assert error.retryable  # the credentials, not the token: sent again while the delivery is valid
    assert apns_peer.inbox.items("ios")[0]["status"] == 403


def test_certificate_auth(
    apns_peer: ApnsEmulator,
    apns_provider_factory: Factory,
    apns_tls: LocalTLS,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the provider writes its PEM file
    issued = apns_tls.issue_client_cert(f"Apple Push Services: {APNS_TOPIC}")
    credentials = CertificateCredentials(cert_pem=issued.cert_pem.decode(), key_pem=issued.key_pem.decode())
    provider = apns_provider_factory(certificate=credentials)
    created: list[int] = []
    real_mkstemp = tempfile.mkstemp

    def spy(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)
        created.append(stat.S_IMODE(os.stat(name).st_mode))
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", spy)

    results = run(send_all(provider, [message(1, token(1))]))

    assert results[1].ok
    [record] = apns_peer.inbox.items("ios")
    assert (record["status"], record["auth"]) == (200, "certificate")
    assert created == [0o600]  # a private file...
    assert list(tmp_path.iterdir()) == []  # ...that lived only while aioapns read it


def test_certificate_for_another_app_is_refused(
    apns_peer: ApnsEmulator, apns_provider_factory: Factory, apns_tls: LocalTLS
) -> None:
    issued = apns_tls.issue_client_cert("Apple Push Services: com.other.app")
    provider = apns_provider_factory(certificate=CertificateCredentials(cert_pem=issued.pem.decode()))

    results = run(send_all(provider, [message(1, token(1))]))

    error = results[1].error
    assert error is not None
    assert (error.kind, error.reason) == (ErrorKind.AUTH, "TopicDisallowed")


def test_payload_limit_is_4096_bytes(apns_peer: ApnsEmulator, apns_provider_factory: Factory) -> None:
    def sized(key: int, size: int) -> PushMessage:
        payload: dict[str, Any] = {"aps": {"alert": "x"}, "pad": ""}
        payload["pad"] = "y" * (size - len(b'{"aps":{"alert":"x"},"pad":""}'))
        return PushMessage(key, token(key), payload, {"apns-topic": APNS_TOPIC})

    results = run(send_all(apns_provider_factory(), [sized(1, 4096), sized(2, 4097)]))

    assert results[1].ok
    error = results[2].error
    assert error is not None
    assert (error.kind, error.reason, error.status) == (ErrorKind.PAYLOAD_REJECTED, "PayloadTooLarge", 413)
    assert [r["size"] for r in apns_peer.inbox.items("ios")] in ([4096, 4097], [4097, 4096])


def test_bad_tokens_and_headers_are_refused_locally(apns_peer: ApnsEmulator, apns_provider_factory: Factory) -> None:
    not_hex = PushMessage(1, "not-a-token/../x", {"aps": {}}, {"apns-topic": APNS_TOPIC})
    bad_header = PushMessage(2, token(2), {"aps": {}}, {"apns-topic": APNS_TOPIC, "apns-collapse-id": "a\r\nb"})

    results = run(send_all(apns_provider_factory(), [not_hex, bad_header]))

    assert results[1].error is not None
    assert (results[1].error.kind, results[1].error.reason) == (ErrorKind.TOKEN_INVALID, "BadDeviceToken")
    assert results[2].error is not None
    assert results[2].error.kind is ErrorKind.PAYLOAD_REJECTED
    assert apns_peer.inbox.count() == 0


def test_error_bodies_beyond_the_flow_control_window(apns_peer: ApnsEmulator, apns_provider_factory: Factory) -> None:
    """2,600 error bodies (about 70 KB) on one connection: aioapns alone stops receiving answers at
    64 KiB because it never acknowledges DATA; every message here still gets its answer."""
    batch = [message(i, token(i, "e4000000")) for i in range(2600)]

    results = run(send_all(apns_provider_factory(), batch))

    assert Counter(r.error.reason for r in results.values() if r.error) == {"BadDeviceToken": 2600}
    assert apns_peer.inbox.count("ios") == 2600


def test_streams_per_connection_are_capped(apns_peer: ApnsEmulator, apns_provider_factory: Factory) -> None:
    """250 requests in flight at once (each answered after 0.5 s) spread over connections of at
    most STREAMS_PER_CONNECTION streams, though the server would take 1000 on one."""
    apns_peer.slow_delay = 0.5
    batch = [message(i, token(i, "d0000000")) for i in range(250)]

    async def scenario() -> tuple[list[SendResult], int]:
        provider = apns_provider_factory()
        try:
            results = await provider.send(batch)
            return results, apns_peer.open_connections
        finally:
            await provider.close()

    results, connections = run(scenario())

    assert all(r.ok for r in results)
    assert STREAMS_PER_CONNECTION == 100
    assert connections == 3
    assert len(delivered(apns_peer)) == 250


def test_a_2000_message_batch(apns_peer: ApnsEmulator, apns_provider_factory: Factory) -> None:
    batch = [message(i, token(i)) for i in range(2000)]

    results = run(send_all(apns_provider_factory(), batch))

    assert all(r.ok for r in results.values())
    assert apns_peer.inbox.count("ios") == 2000
    assert len(delivered(apns_peer)) == 2000


def test_unreachable_endpoint_is_a_connection_error(apns_provider_factory: Factory) -> None:
    provider = apns_provider_factory(endpoint="https://127.0.0.1:9", max_connection_attempts=1)

    results = run(send_all(provider, [message(1, token(1))]))

    error = results[1].error
    assert error is not None
    assert (error.kind, error.reason) == (ErrorKind.CONNECTION, "connection_failed")


def test_endpoint_and_credentials_are_checked_at_construction(apns_tls: LocalTLS) -> None:
    assert parse_endpoint("https://127.0.0.1:8443") == ("127.0.0.1", 8443)
    assert parse_endpoint("https://[::1]:8443/") == ("::1", 8443)
    with pytest.raises(ValueError, match="https"):
        parse_endpoint("http://127.0.0.1:8443")
    with pytest.raises(ValueError, match="exactly one"):
        ApnsProvider(topic=APNS_TOPIC)
    ca_only = apns_tls.ca_path.read_text()  # a certificate without its key
    with pytest.raises(ValueError):
        ApnsProvider(topic=APNS_TOPIC, certificate=CertificateCredentials(cert_pem=ca_only))
    provider = ApnsProvider(topic=APNS_TOPIC, token=make_apns_key().credentials, sandbox=True)
    assert (provider.host, provider.port) == ("api.sandbox.push.apple.com", 443)
    assert ApnsProvider(topic=APNS_TOPIC, token=make_apns_key().credentials).host == "api.push.apple.com"


@pytest.mark.slow
def test_standalone_emulator_process(tmp_path: Path) -> None:
    """``python -m push.peers.apns`` as the benchmark runs it: a verified key, a topic, port 0."""
    import signal
    import subprocess
    import sys

    key = make_apns_key()
    (tmp_path / "key.p8").write_text(key.private_pem)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "push.peers.apns",
            "--port",
            "0",
            "--tls-dir",
            str(tmp_path / "tls"),
            "--topic",
            APNS_TOPIC,
            "--key",
            f"{key.key_id}:{key.team_id}:{tmp_path / 'key.p8'}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = re.search(r"https://\S+", line)
        assert url, line
        provider = ApnsProvider(
            topic=APNS_TOPIC, token=key.credentials, endpoint=url.group(0), ca_bundle=tmp_path / "tls" / "ca.pem"
        )
        impostor = ApnsProvider(
            topic=APNS_TOPIC,
            token=make_apns_key().credentials,
            endpoint=url.group(0),
            ca_bundle=tmp_path / "tls" / "ca.pem",
        )
        results = run(send_all(provider, [message(1, token(1)), message(2, token(2, "e4100000"))]))
        refused = run(send_all(impostor, [message(3, token(3))]))
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=10)
    assert results[1].ok
    assert results[2].error is not None and results[2].error.kind is ErrorKind.TOKEN_GONE
    assert refused[3].error is not None and refused[3].error.reason == "InvalidProviderToken"
    assert process.returncode == 0
    assert "after 3 requests" in out

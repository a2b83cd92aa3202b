"""FcmProvider over real TLS and HTTP/2, against both FCM peers: the bundled emulator and the
independent hypercorn one (different HTTP/2 servers, no shared code), so that the sender is not
fitted to one server's quirks. The fixture keeps the name ``fcm_emulator`` for either."""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING, Any

import firebase_admin
import pytest

from push.peers.fcm import FcmEmulator, accounts_from
from push.providers.base import ErrorKind, PushMessage, SendResult
from push.providers.fcm import FcmProvider
from tests.push.fcm_hypercorn import FcmHypercorn
from tests.values import FCM_TOKEN, fcm_token

if TYPE_CHECKING:  # the fixtures module is loaded by pytest_plugins, not imported (assertion rewriting)
    from push.peers.tls import LocalTLS
    from tests.push.fcm_fixtures import FcmAccounts, Loop, MakeProvider

pytest_plugins = ["tests.push.fcm_fixtures"]


@pytest.fixture(scope="module")
def fcm_emulator_session(each_fcm_peer: FcmEmulator) -> FcmEmulator:
    return each_fcm_peer


RICH_PAYLOAD: dict[str, Any] = {
    "data": {"_mId": "4242", "_dId": "1a2b", "adb_title": "Hello Ada", "adb_body": "Your order shipped ✓"},
    "notification": {"title": "Hello Ada", "body": "Your order shipped ✓", "image": "https://cdn.example.com/a.png"},
    "android": {
        "priority": "high",
        "ttl": "3600s",
        "collapse_key": "orders",
        "notification": {
            "channel_id": "orders",
            "sound": "default",
            "tag": "orders",
            "notification_priority": "PRIORITY_HIGH",
            "notification_count": 3,
        },
    },
    "apns": {
        "headers": {"apns-priority": "10"},
        "payload": {"aps": {"alert": {"title": "Hello", "body": "Shipped"}, "badge": 3}, "deeplink": "shop://o/1"},
    },
    "fcm_options": {"analytics_label": "order_shipped"},
}


def by_key(results: list[SendResult]) -> dict[int, SendResult]:
    return {result.key: result for result in results}


def test_success_records_the_exact_message(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, fcm_provider: FcmProvider
) -> None:
    [result] = fcm_loop.run(fcm_provider.send([PushMessage(7, FCM_TOKEN, RICH_PAYLOAD)]))

    [record] = fcm_emulator.inbox.items("android")
    assert result.ok and result.key == 7
    assert result.provider_message_id == record["message_id"]
    assert record["payload"] == {**RICH_PAYLOAD, "token": FCM_TOKEN}
    assert (record["status"], record["reason"], record["project"]) == (200, None, "demo-project")
    assert record["headers"]["x-firebase-client"] == f"fire-admin-python/{firebase_admin.__version__}"
    assert "authorization" not in record["headers"]


def test_the_payload_is_sent_as_built_with_enum_names_in_either_case(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, fcm_provider: FcmProvider
) -> None:
    # The payload builders write proto enum names; Google's JSON parser takes either case. Nothing
    # is converted on the way: what arrives is what was built, plus the token.
    built = {"android": {"priority": "HIGH", "notification": {"visibility": "PUBLIC", "vibrate_timings": ["0.5s"]}}}
    lower = {"android": {"priority": "normal", "notification": {"notification_priority": "priority_low"}}}

    results = by_key(
        fcm_loop.run(fcm_provider.send([PushMessage(1, FCM_TOKEN, built), PushMessage(2, FCM_TOKEN, lower)]))
    )

    assert results[1].ok and results[2].ok
    assert [record["payload"] for record in fcm_emulator.inbox.items("android")] == [
        {**built, "token": FCM_TOKEN},
        {**lower, "token": FCM_TOKEN},
    ]


# token prefix -> (kind, reason, HTTP status, whether Retry-After is given)
INJECTED = {
    "unregistered-": (ErrorKind.TOKEN_GONE, "UNREGISTERED", 404, False),
    "invalid-": (ErrorKind.TOKEN_INVALID, "INVALID_ARGUMENT", 400, False),
    "mismatch-": (ErrorKind.TOKEN_MISMATCH, "SENDER_ID_MISMATCH", 403, False),
    "quota-": (ErrorKind.THROTTLED, "QUOTA_EXCEEDED", 429, True),
    "unavailable-": (ErrorKind.UNAVAILABLE, "UNAVAILABLE", 503, True),
    "internal-": (ErrorKind.UNAVAILABLE, "INTERNAL", 500, False),
    "thirdparty-": (ErrorKind.AUTH, "THIRD_PARTY_AUTH_ERROR", 401, False),
}


def test_injected_errors_map_to_error_kinds_without_retries(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, fcm_provider: FcmProvider
) -> None:
    messages = [
        PushMessage(index, fcm_token(index, prefix=prefix), {"data": {"n": "1"}})
        for index, prefix in enumerate(INJECTED)
    ]
    messages.append(PushMessage(100, FCM_TOKEN, {"data": {"n": "1"}}))

    started = time.monotonic()
    results = by_key(fcm_loop.run(fcm_provider.send(messages)))

    # No retries of the provider's own (firebase-admin's retried 500 and 503 four times, about 7 s).
    assert time.monotonic() - started < 2
    assert fcm_emulator.inbox.count() == len(messages)  # one request each, the 401 included
    assert results[100].ok
    for index, (kind, reason, status, wait) in enumerate(INJECTED.values()):
        retry_after = float(fcm_emulator.retry_after) if wait else None
        error = results[index].error
        assert error is not None, reason
        assert (error.kind, error.reason, error.status, error.retry_after) == (kind, reason, status, retry_after)
    assert results[1].error is not None and "not a valid FCM registration token" in results[1].error.message


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [
        ("quota-once-", ErrorKind.THROTTLED),
        ("unavailable-once-", ErrorKind.UNAVAILABLE),
        ("internal-once-", ErrorKind.UNAVAILABLE),
    ],
)
def test_fail_once_then_success_on_resend(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, fcm_provider: FcmProvider, prefix: str, kind: ErrorKind
) -> None:
    message = PushMessage(1, fcm_token("fail once", prefix=prefix), {"data": {"n": "1"}})

    [first] = fcm_loop.run(fcm_provider.send([message]))
    [second] = fcm_loop.run(fcm_provider.send([message]))

    assert first.error is not None and first.error.kind is kind and first.error.retryable
    assert second.ok and second.provider_message_id
    assert [r["status"] for r in fcm_emulator.inbox.items("android")] == [first.error.status, 200]


def test_slow_answer_is_a_timeout_and_does_not_hold_up_the_others(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, make_fcm_provider: MakeProvider
) -> None:
    provider = make_fcm_provider()
    messages = [
        PushMessage(1, fcm_token(1, prefix="slow-"), {"data": {"n": "1"}}),
        PushMessage(2, FCM_TOKEN, {"data": {"n": "1"}}),
    ]

    results = by_key(fcm_loop.run(provider.send(messages)))

    # A TIMEOUT means the provider stopped waiting before the slow answer (no wall-clock bound:
    # on a loaded machine the send itself can take longer than the peer's delay).
    assert results[1].error is not None and results[1].error.kind is ErrorKind.TIMEOUT
    assert results[2].ok


def test_payload_size_limit_is_4096_bytes(fcm_loop: Loop, fcm_provider: FcmProvider) -> None:
    overhead = len(json.dumps({"data": {"k": ""}}, separators=(",", ":")))
    fits = {"data": {"k": "x" * (4096 - overhead)}}
    too_big = {"data": {"k": "x" * (4097 - overhead)}}

    results = by_key(
        fcm_loop.run(fcm_provider.send([PushMessage(1, fcm_token("a"), fits), PushMessage(2, fcm_token("b"), too_big)]))
    )

    assert results[1].ok
    error = results[2].error
    assert error is not None
    assert (error.kind, error.reason, error.status, error.message) == (
        ErrorKind.PAYLOAD_REJECTED,
        "INVALID_ARGUMENT",
        400,
        "Message is too big",
    )


def test_payload_of_the_wrong_shape_is_rejected_without_a_request(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, fcm_provider: FcmProvider
) -> None:
    messages = [
        PushMessage(1, fcm_token("a"), {"data": {"count": 3}}),  # data values must be strings
        PushMessage(2, fcm_token("b"), {"android": {"priority": "urgent"}}),
        PushMessage(3, fcm_token("c"), {"android": {"colour": "#ff0000"}}),  # unknown field
        PushMessage(5, fcm_token("e"), {"android": {"ttl": "1 hour"}}),  # a duration is "3600s"
        PushMessage(6, fcm_token("f"), {"token": fcm_token("x")}),  # the target is the provider's
        PushMessage(4, fcm_token("d"), {"data": {"n": "1"}}),
    ]

    results = by_key(fcm_loop.run(fcm_provider.send(messages)))

    for key in (1, 2, 3, 5, 6):
        error = results[key].error
        assert error is not None and error.kind is ErrorKind.PAYLOAD_REJECTED and error.status is None
    assert results[1].error is not None and results[1].error.message.startswith("message.data.count: 3 is not of type")
    assert results[4].ok
    assert [r["token"] for r in fcm_emulator.inbox.items("android")] == [fcm_token("d")]


def test_wrong_key_is_refused_by_the_token_endpoint_and_fails_the_batch_with_auth(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, fcm_accounts: FcmAccounts, make_fcm_provider: MakeProvider
) -> None:
    provider = make_fcm_provider({**fcm_accounts.wrong_key, "token_uri": fcm_emulator.token_url})

    results = fcm_loop.run(provider.send([PushMessage(i, fcm_token(i), {"data": {"n": "1"}}) for i in range(3)]))

    assert len(results) == 3
    for result in results:
        assert result.error is not None
        assert (result.error.kind, result.error.reason) == (ErrorKind.AUTH, "invalid_grant")
    assert fcm_emulator.inbox.count() == 0


def test_refused_grant_fails_the_batch_with_auth(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, make_fcm_provider: MakeProvider
) -> None:
    fcm_emulator.fail_token_endpoint(403)
    provider = make_fcm_provider()

    results = fcm_loop.run(provider.send([PushMessage(1, fcm_token("a"), {"data": {"n": "1"}})]))

    assert results[0].error is not None and results[0].error.kind is ErrorKind.AUTH


def test_unreachable_token_endpoint_fails_the_batch_as_unavailable(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, fcm_account: dict[str, Any], make_fcm_provider: MakeProvider
) -> None:
    provider = make_fcm_provider({**fcm_account, "token_uri": f"https://127.0.0.1:{closed_port()}/token"})

    results = fcm_loop.run(provider.send([PushMessage(i, fcm_token(i), {"data": {"n": "1"}}) for i in range(2)]))

    for result in results:
        assert result.error is not None
        assert (result.error.kind, result.error.reason) == (ErrorKind.UNAVAILABLE, "token_endpoint_unreachable")
    assert fcm_emulator.inbox.count() == 0


def test_token_endpoint_outage_fails_the_batch_as_unavailable(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, fcm_account: dict[str, Any], fcm_tls: LocalTLS
) -> None:
    # google-auth itself tries a 5xx token endpoint three times (about 3 s).
    fcm_emulator.fail_token_endpoint(503)

    async def attempt() -> list[SendResult]:
        provider = FcmProvider(fcm_account, endpoint=fcm_emulator.base_url, ca_bundle=fcm_tls.ca_path)
        try:
            return await provider.send([PushMessage(i, fcm_token(i), {"data": {"n": "1"}}) for i in range(2)])
        finally:
            await provider.close()

    results = fcm_loop.run(attempt())

    for result in results:
        assert result.error is not None and result.error.retryable
        assert (result.error.kind, result.error.reason) == (ErrorKind.UNAVAILABLE, "token_endpoint_unavailable")
    assert fcm_emulator.inbox.count() == 0


def test_unreachable_fcm_endpoint_is_a_connection_error(fcm_loop: Loop, make_fcm_provider: MakeProvider) -> None:
    provider = make_fcm_provider(endpoint=f"https://127.0.0.1:{closed_port()}")

    [result] = fcm_loop.run(provider.send([PushMessage(1, fcm_token("a"), {"data": {"n": "1"}})]))

    assert result.error is not None and result.error.kind is ErrorKind.CONNECTION


def test_refused_access_token_is_refreshed_once(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, fcm_provider: FcmProvider
) -> None:
    [first] = fcm_loop.run(fcm_provider.send([PushMessage(1, fcm_token("a"), {"data": {"n": "1"}})]))
    fcm_emulator.forget_tokens()  # as after a restart of the peer

    [second] = fcm_loop.run(fcm_provider.send([PushMessage(2, fcm_token("b"), {"data": {"n": "1"}})]))

    assert first.ok and second.ok
    assert [(r["token"], r["status"]) for r in fcm_emulator.inbox.items("android")] == [
        (fcm_token("a"), 200),
        (fcm_token("b"), 401),
        (fcm_token("b"), 200),
    ]


def test_a_batch_of_1000_arrives_exactly_once(
    fcm_loop: Loop, fcm_emulator: FcmEmulator, fcm_provider: FcmProvider
) -> None:
    messages = [PushMessage(i, fcm_token(i), {"data": {"_mId": str(i)}}) for i in range(1000)]

    results = fcm_loop.run(fcm_provider.send(messages))

    assert sorted(r.key for r in results) == list(range(1000))
    assert all(r.ok for r in results)
    assert len({r.provider_message_id for r in results}) == 1000
    records = fcm_emulator.inbox.items("android")
    assert len(records) == 1000
    assert {r["token"] for r in records} == {fcm_token(i) for i in range(1000)}


def test_empty_batch(fcm_loop: Loop, fcm_provider: FcmProvider) -> None:
    assert fcm_loop.run(fcm_provider.send([])) == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_connection_the_peer_closed_while_the_loop_was_idle_is_not_used(
    fcm_loop: Loop, fcm_tls: LocalTLS, fcm_accounts: FcmAccounts
) -> None:
    # Servers close idle connections (hypercorn after keep_alive_timeout, without GOAWAY). Between
    # two batches the worker's loop may be busy elsewhere and not see it: the next request must
    # not go out on the dead connection and come back lost in flight.
    peer = FcmHypercorn(
        accounts_from([fcm_accounts.good]),
        ssl_context=fcm_tls.server_context(),
        hypercorn_options={"keep_alive_timeout": 1.0},
    )
    with peer:
        account = {**fcm_accounts.good, "token_uri": peer.token_url}

        async def create() -> FcmProvider:
            return FcmProvider(account, endpoint=peer.base_url, ca_bundle=fcm_tls.ca_path)

        provider = fcm_loop.run(create())
        try:
            [first] = fcm_loop.run(provider.send([PushMessage(1, fcm_token("a"), {"data": {"n": "1"}})]))
            time.sleep(2.5)  # the loop does not run; the peer closes the idle connection meanwhile
            [second] = fcm_loop.run(provider.send([PushMessage(2, fcm_token("b"), {"data": {"n": "1"}})]))
        finally:
            fcm_loop.run(provider.close())

    assert first.ok and second.ok, second.error
    assert [r["token"] for r in peer.inbox.items("android")] == [fcm_token("a"), fcm_token("b")]

"""Raw-client baseline of ``bench/send.py``: the client libraries alone against the emulators, no database.

Run by ``bench/send.py`` as a separate process, once per platform, against the same emulator
processes the gateway sends to. It imports nothing of pushgate: what it measures is what the
libraries themselves can do on this machine.

``apns``
    A bare aioapns loop: one ``aioapns.APNs`` client with token authentication (the .p8 key), built
    inside the running loop; its connection pool's ``protocol_class`` is replaced by a subclass that
    carries the emulator's host and port, and its ``ssl_context`` trusts the emulator's CA (as
    ``docs/local-peers.md`` describes). ``--concurrency`` coroutines (default 1000, the
    emulator's MAX_CONCURRENT_STREAMS) take the messages one after the other from a shared
    iterator, so at most that many requests are in flight.
``fcm``
    A bare firebase-admin loop: ``messaging.send_each_async`` in chunks of 500, one chunk after the
    other, on one event loop. The App's messaging service is replaced by a subclass whose only
    change is the send URL (``self._fcm_url``, the per-App override docs/local-peers.md describes), so the
    send path is firebase-admin's own: its httpx HTTP/2 client, its google-auth flow (the OAuth
    token from the service account's ``token_uri``) and its retrying transport. Trust in the
    emulator's CA comes from ``SSL_CERT_FILE`` (httpx) and ``REQUESTS_CA_BUNDLE`` (google-auth's
    requests transport), which ``bench/send.py`` sets for this process only.

``both``
    The two loops at once on one event loop (each clock starting when both are ready): what the
    raw clients do when one delivery goes to both platforms, sharing one process and the CPUs as
    the gateway's worker does. One JSON line per platform.

Payloads have the shape and about the size of what the gateway sends for the benchmark's message
(title, personalised body, one custom data key, ``_mId``/``_dId``), each to its own token.

The clock runs from just before the client is built to the last answer, so the connection set-up
(TLS, provider token or OAuth exchange) is included, as it is in the end-to-end figure. The result
is one JSON line on stdout: ``{"platform", "messages", "ok", "errors", "elapsed", "cpu",
"error_samples"}``.

    python bench/send_baseline.py apns --count 10000 --endpoint https://127.0.0.1:8443 --ca tls/ca.pem \\
        --key-file key.p8 --key-id ABC123DEFG --team-id DEF123GHIJ --topic com.example.bench
    SSL_CERT_FILE=tls/ca.pem REQUESTS_CA_BUNDLE=tls/ca.pem python bench/send_baseline.py fcm \\
        --count 10000 --endpoint https://127.0.0.1:8444 --service-account sa.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TITLE = "Flash sale"
FIRST_NAMES = ("Alice", "Bruno", "Chloe", "Dmitri", "Emma", "Farid", "Grace", "Hugo")
CUSTOM_DATA = {"offer": "SPRING24"}
FCM_CHUNK = 500  # send_each_async refuses more


def body_for(i: int) -> str:
    return f"Hi {FIRST_NAMES[i % len(FIRST_NAMES)]}, 20% off everything until midnight"


# --------------------------------------------------------------------------------------------
# APNs: bare aioapns
# --------------------------------------------------------------------------------------------


async def run_apns(args: argparse.Namespace, ready: asyncio.Barrier | None = None) -> dict[str, Any]:
    from aioapns import APNs, NotificationRequest, PushType
    from aioapns.connection import APNsTLSClientProtocol

    parts = urlsplit(args.endpoint)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443

    class LocalPeer(APNsTLSClientProtocol):
        APNS_SERVER = host
        APNS_PORT = port

    key_pem = Path(args.key_file).read_text()
    expiration = 24 * 3600
    requests = [
        NotificationRequest(
            device_token=f"ba5e{i:060x}",
            message={
                "aps": {"alert": {"title": TITLE, "body": body_for(i)}},
                "_mId": str(i + 1),
                "_dId": "1",
                **CUSTOM_DATA,
            },
            time_to_live=expiration,
            priority=10,
            push_type=PushType.ALERT,
        )
        for i in range(args.count)
    ]
    statuses: Counter[str] = Counter()
    samples: list[str] = []

    async def error_sink(request: Any, result: Any) -> None:
        """aioapns logs each error answer unless given this; results are counted below."""

    if ready is not None:
        await ready.wait()
    cpu_started, started = time.process_time(), time.perf_counter()
    context = ssl.create_default_context(cafile=args.ca)
    client = APNs(
        key=key_pem,
        key_id=args.key_id,
        team_id=args.team_id,
        topic=args.topic,
        use_sandbox=True,
        ssl_context=context,
        err_func=error_sink,
    )
    client.pool.protocol_class = LocalPeer
    pending: Iterator[Any] = iter(requests)

    async def sender() -> None:
        for request in pending:
            try:
                result = await client.send_notification(request)
            except Exception as exc:  # counted, never raised: the run reports what failed
                statuses[type(exc).__name__] += 1
                if len(samples) < 5:
                    samples.append(f"{type(exc).__name__}: {exc}")
                continue
            statuses[result.status] += 1
            if not result.is_successful and len(samples) < 5:
                samples.append(f"{result.status} {result.description}")

    await asyncio.gather(*(sender() for _ in range(min(args.concurrency, args.count))))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    client.pool.close()
    ok = statuses.pop("200", 0)
    return {"ok": ok, "errors": dict(statuses), "elapsed": elapsed, "cpu": cpu, "error_samples": samples}


# --------------------------------------------------------------------------------------------
# FCM: firebase-admin's send_each_async
# --------------------------------------------------------------------------------------------


async def run_fcm(args: argparse.Namespace, ready: asyncio.Barrier | None = None) -> dict[str, Any]:
    import firebase_admin  # type: ignore[import-untyped]  # no type information shipped
    from firebase_admin import credentials, messaging

    account = json.loads(Path(args.service_account).read_text())
    endpoint = args.fcm_endpoint if args.platform == "both" else args.endpoint
    url = f"{endpoint.rstrip('/')}/v1/projects/{account['project_id']}/messages:send"

    class RedirectedMessaging(messaging._MessagingService):  # type: ignore[misc]
        """firebase-admin's own messaging service; only the send URL differs."""

        def __init__(self, app: Any) -> None:
            super().__init__(app)
            self._fcm_url = url

    def message(i: int) -> Any:
        data = {
            "_mId": str(i + 1),
            "_dId": "1",
            "adb_version": "1",
            "adb_title": TITLE,
            "adb_body": body_for(i),
            "adb_a_type": "DISMISS",
            "adb_n_priority": "PRIORITY_HIGH",
            **CUSTOM_DATA,
        }
        android = messaging.AndroidConfig(priority="high", ttl=24 * 3600)
        return messaging.Message(data=data, android=android, token=f"baseline-{i:08d}:APA91b{'x' * 140}")

    with warnings.catch_warnings():  # Message(token=...) is deprecated in favour of fid in 7.7; FCM reads token
        warnings.simplefilter("ignore", DeprecationWarning)
        messages = [message(i) for i in range(args.count)]
    statuses: Counter[str] = Counter()
    samples: list[str] = []

    if ready is not None:
        await ready.wait()
    cpu_started, started = time.process_time(), time.perf_counter()
    app = firebase_admin.initialize_app(
        credentials.Certificate(account), {"projectId": account["project_id"]}, name="bench-baseline"
    )
    service = app._get_service(messaging._MESSAGING_ATTRIBUTE, RedirectedMessaging)
    for start in range(0, len(messages), FCM_CHUNK):
        batch = await messaging.send_each_async(messages[start : start + FCM_CHUNK], app=app)
        for response in batch.responses:
            if response.success:
                statuses["ok"] += 1
                continue
            name = type(response.exception).__name__
            statuses[name] += 1
            if len(samples) < 5:
                samples.append(f"{name}: {response.exception}")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    await service._async_client.aclose()  # on this loop (the App is left to the process's exit:
    # delete_app would close the client again with asyncio.run, refused inside a running loop)
    ok = statuses.pop("ok", 0)
    return {"ok": ok, "errors": dict(statuses), "elapsed": elapsed, "cpu": cpu, "error_samples": samples}


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/send_baseline.py",
        description="Raw-client baseline: a bare aioapns or firebase-admin send loop against a local "
        "emulator, no database. Prints one JSON line.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("platform", choices=("apns", "fcm", "both"))
    parser.add_argument("--count", type=int, default=10_000, help="notifications to send")
    parser.add_argument("--endpoint", required=True, help="emulator base URL, e.g. https://127.0.0.1:8443")
    parser.add_argument("--fcm-endpoint", help="both: the FCM emulator's base URL (--endpoint is the APNs one)")
    parser.add_argument("--concurrency", type=int, default=1000, help="APNs: requests in flight at most")
    parser.add_argument("--ca", help="APNs: CA file the client trusts (the emulator's ca.pem)")
    parser.add_argument("--key-file", help="APNs: the .p8 key")
    parser.add_argument("--key-id", help="APNs: key id")
    parser.add_argument("--team-id", help="APNs: team id")
    parser.add_argument("--topic", help="APNs: apns-topic (bundle id)")
    parser.add_argument("--service-account", help="FCM: service-account JSON whose token_uri is the emulator's")
    args = parser.parse_args(argv)
    needed = {
        "apns": ("ca", "key_file", "key_id", "team_id", "topic"),
        "fcm": ("service_account",),
        "both": ("ca", "key_file", "key_id", "team_id", "topic", "service_account"),
    }[args.platform]
    missing = [f"--{name.replace('_', '-')}" for name in needed if not getattr(args, name)]
    if args.platform == "both" and not args.fcm_endpoint:
        missing.append("--fcm-endpoint")
    if missing:
        parser.error(f"{args.platform} needs {', '.join(missing)}")
    if args.count < 1 or args.concurrency < 1:
        parser.error("--count and --concurrency must be at least 1")
    return args


async def run_both(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Both loops at once on one event loop, their clocks started together once both are ready:
    the raw clients' counterpart of one delivery to both platforms. Each platform's ``elapsed``
    ends at its own last answer; ``cpu`` is the whole process's, the same figure for both."""
    ready = asyncio.Barrier(2)
    cpu_started = time.process_time()
    results = await asyncio.gather(run_apns(args, ready), run_fcm(args, ready))
    cpu = time.process_time() - cpu_started
    return [
        {"platform": platform, **result, "cpu": cpu} for platform, result in zip(("apns", "fcm"), results, strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.platform == "both":
        results = asyncio.run(run_both(args))
    else:
        runner = run_apns if args.platform == "apns" else run_fcm
        results = [{"platform": args.platform, **asyncio.run(runner(args))}]
    for result in results:
        print(json.dumps({"messages": args.count, **result}), flush=True)
    return 0 if all(result["ok"] == args.count for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())

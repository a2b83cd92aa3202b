"""Issue 14, item 5: anonymous traffic is limited per client address, API traffic per key.

Before the fix nothing limited the public endpoints: random tokens became subscriptions and random
ECIDs identity rows without bound, from one client, as fast as it could send.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis
from flask import Flask

from tests.conftest import runtime_of
from tests.factories import make_app
from tests.values import ECID, ORG, fcm_token

LIMIT = 5


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        **settings_overrides,
        "rate_limit_public": f"{LIMIT}/minute",
        "rate_limit_api": f"{LIMIT}/minute",
        "trusted_proxies": "",
    }


def _register(http: httpx.Client, key: str, n: int, **headers: str) -> httpx.Response:
    return http.post("/api/v1/subscriptions", json={"integration_key": key, "token": fcm_token(n)}, headers=headers)


def _subscriptions(app: Flask) -> int:
    from store.models import Subscription

    with runtime_of(app).sessions() as session:
        return session.query(Subscription).count()


def test_public_registrations_stop_at_the_limit_per_client(app: Flask, live_server: str) -> None:
    ids = make_app(app)
    with httpx.Client(base_url=live_server, timeout=10) as http:
        answers = [_register(http, ids["android_key"], n) for n in range(LIMIT + 3)]
        assert [a.status_code for a in answers] == [201] * LIMIT + [429] * 3
        refused = answers[-1]
        assert refused.json()["error"] == "rate_limited"
        assert 0 < int(refused.headers["Retry-After"]) <= 60
        # A client cannot pick another address: X-Forwarded-For from an untrusted peer is ignored.
        assert _register(http, ids["android_key"], 99, **{"X-Forwarded-For": "203.0.113.7"}).status_code == 429
        # Each family counts on its own: tracking and /id still answer.
        assert http.get("/r/", params={"id": "h1,1,1"}).status_code == 200
        assert http.get("/id", params={"d_orgid": ORG, "d_mid": ECID}).status_code == 200
    assert _subscriptions(app) == LIMIT


def test_api_keys_are_counted_one_by_one(app: Flask, live_server: str, keys: Any) -> None:
    with httpx.Client(base_url=live_server, timeout=10) as http:
        viewer = [http.get("/api/v1/apps", headers=keys.viewer).status_code for _ in range(LIMIT + 1)]
        assert viewer == [200] * LIMIT + [429]
        assert http.get("/api/v1/apps", headers=keys.admin).status_code == 200  # another key, its own count
        assert http.get("/healthz").status_code == 200  # the probes are never limited


def test_trusted_proxies_give_each_client_its_own_count(app: Flask, gateway_with: Any) -> None:
    proxied = gateway_with(trusted_proxies="127.0.0.1/32")
    ids = make_app(proxied)
    client = proxied.test_client()

    def register(n: int, forwarded: str) -> int:
        return client.post(
            "/api/v1/subscriptions",
            json={"integration_key": ids["android_key"], "token": fcm_token(n)},
            headers={"X-Forwarded-For": forwarded},
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        ).status_code

    # A client's own X-Forwarded-For is kept by the proxy, which appends the address it saw.
    first = [register(n, f"198.51.100.{n}, 203.0.113.10") for n in range(LIMIT + 1)]
    assert first == [201] * LIMIT + [429]  # one client (203.0.113.10), whatever it claimed before
    assert register(50, "203.0.113.11") == 201  # another client behind the same proxy


@pytest.fixture
def redis_url() -> str:
    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url).flushdb()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {url}: {exc}")
    return url


def test_processes_share_their_counts_through_redis(app: Flask, gateway_with: Any, redis_url: str) -> None:
    first, second = gateway_with(redis_url=redis_url), gateway_with(redis_url=redis_url)
    ids = make_app(first)
    answers = []
    for n in range(LIMIT + 1):
        gateway = first if n % 2 else second
        answers.append(
            gateway.test_client()
            .post("/api/v1/subscriptions", json={"integration_key": ids["android_key"], "token": fcm_token(n)})
            .status_code
        )
    assert answers == [201] * LIMIT + [429]
    redis.Redis.from_url(redis_url).flushdb()

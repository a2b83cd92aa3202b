"""Fixtures of the functional tests: the local APNs and FCM emulators with the settings of a gateway
that sends to them, and the HTTP client of an app on a phone, which reaches the live server through
pushgate's public host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from gateway.cli import peers as runner
from tests.conftest import runtime_of
from tests.functional import sdk_wire

PUBLIC_HOST = "push.example.test"  # the root conftest's public_url


@pytest.fixture
def emulators(app: Flask, tmp_path: Path) -> Iterator[runner.RunningEmulators]:
    rt = runtime_of(app)
    running = runner.start(runner.StoredCredentials(rt.sessions, rt.box), tmp_path / "tls", slow_delay=1.0)
    yield running
    running.stop()


@pytest.fixture
def pointed(settings_overrides: dict[str, Any], emulators: runner.RunningEmulators) -> dict[str, Any]:
    """Settings for a gateway that sends to the emulators."""
    env = emulators.environment()
    return {
        **settings_overrides,
        "apns_endpoint": env["PUSHGATE_APNS_ENDPOINT"],
        "fcm_endpoint": env["PUSHGATE_FCM_ENDPOINT"],
        "ca_bundle": Path(env["PUSHGATE_CA_BUNDLE"]),
        "provider_timeout": 2.0,
        "worker_lease_seconds": 4.0,
    }


@pytest.fixture
def sdk_http(live_server: str) -> Iterator[httpx.Client]:
    """What the app on the phone uses: https://push.example.test, resolved to the live server."""
    with httpx.Client(transport=sdk_wire.PublicHost(PUBLIC_HOST, live_server), timeout=10) as client:
        yield client

"""Issue 14, item 8: ``/metrics`` can require a token (it names apps and counts their traffic)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

METRICS_TOKEN = "mZ3q8vX1kP0sR7tY2wB5nC9dF4gH6jL0"


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**settings_overrides, "metrics_token": METRICS_TOKEN}


def test_metrics_need_the_token_when_one_is_set(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=10) as http:
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get("/metrics", headers={"Authorization": METRICS_TOKEN}).status_code == 401
        refused = http.get("/metrics", headers={"Authorization": "Bearer x"})
        assert refused.json()["error"] == "unauthorized" and METRICS_TOKEN not in refused.text
        answer = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert answer.status_code == 200 and "pushgate_" in answer.text
        assert http.get("/healthz").status_code == 200  # the probes stay open
        assert http.get("/readyz").status_code == 200

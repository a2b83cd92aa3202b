"""Prometheus metrics, defined once per process.

Under gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder so the
workers' figures are added up (prometheus_client's multiprocess mode); ``/metrics`` then reads
that folder.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

HTTP_REQUESTS = Counter(
    "pushgate_http_requests_total",
    "HTTP requests by endpoint, method and status",
    ["endpoint", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "pushgate_http_request_duration_seconds",
    "HTTP request latency by endpoint",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
REGISTRATIONS = Counter(
    "pushgate_registrations_total",
    "Push registrations by SDK family, platform and outcome",
    ["sdk", "platform", "outcome"],
)
UNVERIFIED_USER_KEYS = Counter(
    "pushgate_unverified_user_keys_total",
    "Registrations stored unlinked because the app verifies user keys and theirs was not vouched for, "
    "by SDK family, platform and reason (missing: no hash where one is required; invalid: a wrong hash)",
    ["sdk", "platform", "reason"],
)
TRACKING_EVENTS = Counter(
    "pushgate_tracking_events_total",
    "Tracking calls by source, interaction and whether they matched a message",
    ["source", "interaction", "matched"],
)


MESSAGES = Counter(
    "pushgate_messages_total",
    "Push messages by provider, app and outcome (sent, retry, failed_hard, ...)",
    ["provider", "app", "outcome"],
)
PROVIDER_LATENCY = Histogram(
    "pushgate_provider_batch_seconds",
    "Time one provider call (a batch) took",
    ["platform"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
QUEUE_DEPTH = Gauge("pushgate_queue_depth", "Pending broadLog messages of running deliveries", multiprocess_mode="max")
AUTH_REFUSALS = Counter(
    "pushgate_provider_auth_failures_total",
    "Push messages refused for the app's credentials (missing, undecryptable, or refused by APNs, FCM or the "
    "OAuth token endpoint), by provider, app and reason code",
    ["provider", "app", "reason"],
)
BROKER_QUEUE_DEPTH = Gauge(
    "pushgate_broker_queue_depth",
    "Celery mode: tasks waiting in the broker's push and sync queues, read when /metrics is scraped "
    "(NaN when the broker did not answer in time)",
    ["queue"],
    multiprocess_mode="mostrecent",  # the process scraped last read the broker last
)
DELIVERIES_STALLED = Gauge(
    "pushgate_deliveries_stalled",
    "Running deliveries with a platform whose messages cannot be sent (see /readyz and the delivery's error)",
    multiprocess_mode="max",
)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

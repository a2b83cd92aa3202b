"""The measured steps of ``bench/send.py``, each verified: one delivery to one platform through the
gateway's workers, one delivery to both platforms at once, and the raw clients alone.

``run_delivery`` and ``run_one_delivery_to_all`` create a delivery in the instance's database
(the clock starts just before), poll until no Pending broadLog row of it is left (per platform for
the delivery to all) and check the rows and the emulators' inboxes. ``run_baseline`` runs
``bench/send_baseline.py`` for one platform or both at once and checks its answers and the
inboxes. ``run_delivery`` returns one :class:`Phase`, the other two one per platform; each leaves
the emulators' inboxes empty for the next step. A timeout, a dead worker or a baseline that
printed no result raises ``RuntimeError``; a count that does not match only marks the phase not
ok."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.common import ROOT
from bench.send_fixture import (
    BUNDLE_ID,
    KEY_ID,
    PROVIDER,
    TEAM_ID,
    Children,
    Emulators,
    Instance,
    base_env,
    check_inbox,
)
from bench.send_gateway import Gateway, Setting

MESSAGE = {
    "title": "Flash sale",
    "body": "Hi {{ profile.first_name }}, 20% off everything until midnight",
    "data": {"offer": "SPRING24"},
}
POLL_SECONDS = 0.05
PLATFORMS = ("ios", "android")


@dataclass
class Phase:
    scale: int
    platform: str
    kind: str  # "end-to-end" | "one-delivery" | "baseline"
    setting: str  # "100x4" for end to end, "-" for the baseline
    round: int
    messages: int
    elapsed: float
    cpu: float  # gateway worker (end to end) or baseline client CPU seconds
    peer_cpu: float  # the emulator's CPU seconds over the phase
    ok: bool
    detail: str
    started_after: float | None = None  # end to end: seconds until the delivery was seen running (analysed)

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed


def run_delivery(
    instance: Instance,
    gateway: Gateway,
    emulators: Emulators,
    platform_name: str,
    setting: Setting,
    round_no: int,
    timeout: float,
) -> Phase:
    from sqlalchemy import select

    from domain.deliveries import DeliveryCreate, create_delivery
    from push import payloads
    from store import db as store_db
    from store.codes import BroadLogStatus
    from store.models import BroadLog, Delivery

    engine = store_db.make_engine(instance.database_url)
    sessions = store_db.make_session_factory(engine)
    expected = len(instance.tokens[platform_name])
    try:
        data = DeliveryCreate.model_validate(
            {
                "app_id": instance.app_id,
                "name": f"bench {platform_name} {setting.label} {round_no}",
                "message": MESSAGE,
                "target": {"all": True},
                "platforms": [platform_name],
            }
        )
        cpu_before, peer_before = gateway.cpu(), emulators.cpu(platform_name)
        started = time.perf_counter()
        with sessions.begin() as session:
            delivery, _ = create_delivery(session, data, payloads=payloads)
            delivery_id = delivery.id
        pending_query = (
            select(BroadLog.id)
            .where(BroadLog.delivery_id == delivery_id, BroadLog.status == int(BroadLogStatus.PENDING))
            .limit(1)
        )
        started_after = None
        while True:
            with engine.connect() as conn:
                status = conn.scalar(select(Delivery.status).where(Delivery.id == delivery_id))
                if status != "scheduled" and started_after is None:
                    started_after = time.perf_counter() - started
                if status != "scheduled" and conn.scalar(pending_query) is None:
                    break
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"delivery {delivery_id} ({platform_name}) not finished within {timeout:.0f}s")
            gateway.check_alive()
            time.sleep(POLL_SECONDS)
        elapsed = time.perf_counter() - started
        cpu, peer_cpu = gateway.cpu() - cpu_before, emulators.cpu(platform_name) - peer_before
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # completed follows at the worker's next look (not timed)
            with engine.connect() as conn:
                if conn.scalar(select(Delivery.status).where(Delivery.id == delivery_id)) == "completed":
                    break
            time.sleep(POLL_SECONDS)
        with engine.connect() as conn:
            final = conn.scalar(select(Delivery.status).where(Delivery.id == delivery_id))
            by_status, resent = broadlog_tally(conn, delivery_id)
    finally:
        engine.dispose()
    sent = by_status.get(int(BroadLogStatus.SENT), 0)
    inbox = check_inbox(emulators, platform_name, expected, instance.tokens[platform_name])
    ok = sent == expected and sum(by_status.values()) == expected and inbox.exact and final == "completed"
    detail = (
        f"delivery {delivery_id} {final}: {sent}/{expected} Sent, broadLog by status {by_status}, "
        f"resent_after_crash {resent}; inbox {inbox.records} requests, {inbox.accepted} accepted, "
        f"{inbox.distinct} distinct tokens, {inbox.missing} missing, ~{inbox.avg_bytes:.0f} B payload"
    )
    return Phase(
        instance.subscriptions,
        platform_name,
        "end-to-end",
        setting.label,
        round_no,
        expected,
        elapsed,
        cpu,
        peer_cpu,
        ok,
        detail,
        started_after,
    )


def run_one_delivery_to_all(
    instance: Instance, gateway: Gateway, emulators: Emulators, setting: Setting, round_no: int, timeout: float
) -> list[Phase]:
    """The issue's literal scenario: one delivery to every subscription (both platforms at once).

    Per platform, the clock runs from the delivery's creation to that platform's last broadLog row
    leaving Pending, so each figure includes the time the other platform's messages took from the
    same worker and CPUs. Verified like the per-platform deliveries."""
    from sqlalchemy import func, select

    from domain.deliveries import DeliveryCreate, create_delivery
    from push import payloads
    from store import db as store_db
    from store.codes import BroadLogStatus
    from store.models import BroadLog, Delivery

    engine = store_db.make_engine(instance.database_url)
    sessions = store_db.make_session_factory(engine)
    data = DeliveryCreate.model_validate(
        {
            "app_id": instance.app_id,
            "name": f"bench all {setting.label} {round_no}",
            "message": MESSAGE,
            "target": {"all": True},
        }
    )
    finished: dict[str, float] = {}
    try:
        cpu_before = gateway.cpu()
        peers_before = {name: emulators.cpu(name) for name in PLATFORMS}
        started = time.perf_counter()
        with sessions.begin() as session:
            delivery, _ = create_delivery(session, data, payloads=payloads)
            delivery_id = delivery.id
        started_after = None
        while len(finished) < len(PLATFORMS):
            with engine.connect() as conn:
                status = conn.scalar(select(Delivery.status).where(Delivery.id == delivery_id))
                if status != "scheduled":
                    started_after = started_after or time.perf_counter() - started
                    pending = dict(
                        conn.execute(
                            select(BroadLog.channel, func.count())
                            .where(BroadLog.delivery_id == delivery_id, BroadLog.status == int(BroadLogStatus.PENDING))
                            .group_by(BroadLog.channel)
                        ).all()
                    )
                    for name, channel in (("ios", 41), ("android", 42)):
                        if name not in finished and not pending.get(channel):
                            finished[name] = time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"delivery {delivery_id} (all) not finished within {timeout:.0f}s")
            gateway.check_alive()
            time.sleep(POLL_SECONDS)
        cpu = gateway.cpu() - cpu_before
        with engine.connect() as conn:
            by_channel = dict(
                conn.execute(
                    select(BroadLog.channel, func.count())
                    .where(BroadLog.delivery_id == delivery_id, BroadLog.status == int(BroadLogStatus.SENT))
                    .group_by(BroadLog.channel)
                ).all()
            )
    finally:
        engine.dispose()
    phases = []
    for name, channel in (("ios", 41), ("android", 42)):
        expected = len(instance.tokens[name])
        inbox = check_inbox(emulators, name, expected, instance.tokens[name], clear=False)
        ok = by_channel.get(channel, 0) == expected and inbox.exact
        detail = (
            f"delivery {delivery_id} (both platforms): {by_channel.get(channel, 0)}/{expected} {name} Sent; inbox "
            f"{inbox.records} requests, {inbox.accepted} accepted, {inbox.distinct} distinct, {inbox.missing} missing"
        )
        share = cpu * expected / instance.subscriptions  # the worker's CPU, split by message count
        phases.append(
            Phase(
                instance.subscriptions,
                name,
                "one-delivery",
                setting.label,
                round_no,
                expected,
                finished[name],
                share,
                emulators.cpu(name) - peers_before[name],
                ok,
                detail,
                started_after,
            )
        )
    emulators.clear()
    return phases


def run_baseline(
    children: Children,
    emulators: Emulators,
    platform_name: str,
    count: int,
    setting: Setting,
    round_no: int,
    args: argparse.Namespace,
) -> list[Phase]:
    """The raw clients alone (``bench/send_baseline.py``): one platform, or ``both`` at once in one
    process (the counterpart of one delivery to all, kind ``baseline-both``); one phase per platform."""
    names = list(PLATFORMS) if platform_name == "both" else [platform_name]
    provider = "both" if platform_name == "both" else PROVIDER[platform_name]
    argv = [sys.executable, str(ROOT / "bench" / "send_baseline.py"), provider, "--count", str(count)]
    env = base_env()
    if "ios" in names:
        argv += [
            "--endpoint",
            emulators.apns_url,
            "--ca",
            str(emulators.ca_path),
            "--key-file",
            str(emulators.key_path),
            "--key-id",
            KEY_ID,
            "--team-id",
            TEAM_ID,
            "--topic",
            BUNDLE_ID,
            "--concurrency",
            str(args.baseline_concurrency),
        ]
    if "android" in names:
        argv += ["--fcm-endpoint" if "ios" in names else "--endpoint", emulators.fcm_url]
        argv += ["--service-account", str(emulators.service_account_path)]
        # firebase-admin's own clients trust what these name: httpx SSL_CERT_FILE, requests REQUESTS_CA_BUNDLE
        env.update(SSL_CERT_FILE=str(emulators.ca_path), REQUESTS_CA_BUNDLE=str(emulators.ca_path))
    peers_before = {name: emulators.cpu(name) for name in names}
    child = children.start(f"baseline-{provider}-{setting.label}-{round_no}", argv, env)
    child.wait(args.timeout)
    results = {}
    for line in child.log_text().splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[result["platform"]] = result
    phases = []
    for name in names:
        result = results.get(PROVIDER[name])
        if result is None:
            raise RuntimeError(f"baseline {provider} printed no result for {name}:\n{child.log_tail()}")
        inbox = check_inbox(emulators, name, count, None, clear=name == names[-1])
        ok = result["ok"] == count and inbox.exact and inbox.accepted == count
        detail = (
            f"{result['ok']}/{count} ok, errors {result['errors'] or 'none'}"
            f"{' e.g. ' + '; '.join(result['error_samples'][:2]) if result['error_samples'] else ''}; "
            f"inbox {inbox.records} requests, {inbox.accepted} accepted, {inbox.distinct} distinct tokens, "
            f"~{inbox.avg_bytes:.0f} B payload"
        )
        phases.append(
            Phase(
                0,
                name,
                "baseline-both" if len(names) > 1 else "baseline",
                setting.label,
                round_no,
                count,
                result["elapsed"],
                result["cpu"] / len(names),  # the process's CPU, split evenly (as many messages each)
                emulators.cpu(name) - peers_before[name],
                ok,
                detail,
            )
        )
    return phases


def broadlog_tally(conn: Any, delivery_id: int) -> tuple[dict[int, int], int]:
    """A delivery's broadLog rows counted by status, and how many were resent after a crash."""
    from sqlalchemy import func, select

    from store.models import BroadLog

    by_status = dict(
        conn.execute(
            select(BroadLog.status, func.count()).where(BroadLog.delivery_id == delivery_id).group_by(BroadLog.status)
        ).all()
    )
    resent = conn.scalar(
        select(func.count()).where(BroadLog.delivery_id == delivery_id, BroadLog.resent_after_crash.is_(True))
    )
    return by_status, int(resent or 0)

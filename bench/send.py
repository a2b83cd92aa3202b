"""Benchmark: push deliveries end to end through a gateway worker, against the raw clients alone.

Everything runs as separate processes on 127.0.0.1, started by this script and ended on any exit
(error, Ctrl-C, SIGTERM):

- the emulators, started once and reused by every phase: ``python -m push.peers.apns`` (given
  the benchmark's .p8 key with ``--key``, so it verifies the ES256 provider tokens) and
  ``python -m push.peers.fcm`` (``--new-service-account``: it writes a service account whose
  ``token_uri`` is its own ``/token`` and verifies that account's signed assertions); both share
  one TLS folder (one local CA);
- the gateway side: ``flask --app wsgi worker`` with ``PUSHGATE_*`` pointing at the emulators and at
  a fresh SQLite (WAL) database in a temporary instance folder (migrated with
  ``store.db.upgrade``), holding one app whose iOS part uses the .p8 key (token auth) and whose
  Android part uses the emulator's service account, N profiles and N subscriptions (half iOS with
  64-digit hex tokens, half Android with FCM-like tokens), bulk-inserted;
- the raw-client baseline, ``bench/send_baseline.py``: a bare aioapns loop and a bare
  firebase-admin ``send_each_async`` loop (chunks of 500) against the same emulator processes,
  with no database.

End to end, per platform: a delivery targeting every subscription of one platform
(``platforms: ["ios"]``, then ``["android"]``) is created here with
``domain.deliveries.create_delivery`` (the clock starts just before), and the clock stops when this
process sees no Pending broadLog row of it left (polled every 50 ms). The worker's own start-up
latency (its next 0.5 s tick, then the analysis) is part of the figure, as it is for a marketer;
column ``start s`` shows it. Each phase is verified: every broadLog row Sent, and the emulator's
inbox holding exactly one accepted request per token (``GET /_emulator/inbox``, emptied after each
phase). Any verification failure exits 1.

Then, as the issue words it, one delivery to all subscriptions (both platforms at once): per
platform, the time from its creation to that platform's last final broadLog row, against the raw
clients sending both platforms at once in one process (``send_baseline.py both``, the same round):
both sides then share one process and the machine's CPUs (``--no-one-delivery`` skips it). The
summary judges the goal on both scenarios: each platform's own delivery against its raw client
alone ("alone"), and the delivery to all against the raw clients at once ("to all").

Ratios are paired: per platform, the baseline runs (while the worker idles) just before the
delivery it is compared with, and the summary gives the median of end-to-end/baseline over the
rounds, so load from other processes on a small machine hits both sides of a ratio alike.

Memory: the peak RSS (``VmHWM``) of the worker process after one iOS, one Android and one delivery to all, with
N subscriptions (default 20,000) and again, in a fresh instance and worker process, with ``--scale``
subscriptions (default 100,000).

Goals (issue 3): end-to-end throughput at least 0.8 of the raw-client baseline on each platform,
peak memory at 100,000 subscriptions at most 1.5 times that at 20,000. Time is never asserted:
this prints figures.

Experiments: ``--sweep`` compares worker settings (``BATCHxCONCURRENCY[xWORKERS]``, each a fresh set
of worker processes; the in-flight window is their product). To measure a candidate code change,
run this from a ``git worktree`` of each version, one after the other.

    python bench/send.py                       # 20,000 then 100,000 subscriptions (about 4 minutes)
    python bench/send.py --quick               # 20,000 only
    python bench/send.py --batch-size 150 --concurrency 2
    python bench/send.py --quick --rounds 2 --sweep 100x3 150x2 150x1x2
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the project's packages, when run as ``python bench/send.py``

from bench.common import Child, code_version, end_children_on_signals, exit_with, remove_workdir  # noqa: E402
from bench.send_fixture import (  # noqa: E402
    BUNDLE_ID,
    KEY_ID,
    PROVIDER,
    TEAM_ID,
    Children,
    Emulators,
    Instance,
    base_env,
    check_inbox,
    prepare_instance,
    proc_cpu,
    proc_status,
    start_emulators,
)

#: What the figures measure: uncommitted changes here are named in the header.
MEASURED_CODE = ("push/", "core/", "domain/", "gateway/", "store/", "wsgi.py")

MESSAGE = {
    "title": "Flash sale",
    "body": "Hi {{ profile.first_name }}, 20% off everything until midnight",
    "data": {"offer": "SPRING24"},
}
POLL_SECONDS = 0.05
PLATFORMS = ("ios", "android")


# --------------------------------------------------------------------------------------------
# phases
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """PUSHGATE_WORKER_BATCH_SIZE x PUSHGATE_WORKER_CONCURRENCY (0: default) of each of ``workers``
    worker processes (``flask --app wsgi worker``; they share a delivery through atomic claims)."""

    batch: int = 0
    concurrency: int = 0
    workers: int = 1

    def resolved(self) -> tuple[int, int]:
        from core.config import Settings

        fields = Settings.model_fields
        return (
            self.batch or fields["worker_batch_size"].default,
            self.concurrency or fields["worker_concurrency"].default,
        )

    @property
    def label(self) -> str:
        batch, concurrency = self.resolved()
        workers = f"x{self.workers}w" if self.workers > 1 else ""
        return f"{batch}x{concurrency}{workers}"

    @property
    def window(self) -> int:
        """Messages in flight at most: what a crash of every worker could leave to be sent again."""
        batch, concurrency = self.resolved()
        return batch * concurrency * self.workers


def parse_setting(text: str) -> Setting:
    parts = text.lower().removesuffix("w").split("x")
    if len(parts) not in (2, 3) or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(f"expected BATCHxCONCURRENCY[xWORKERS] such as 100x3 or 150x1x2, not {text!r}")
    numbers = [int(p) for p in parts]
    return Setting(numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else 1)


class Gateway:
    """The worker process(es) of one setting."""

    def __init__(self, processes: list[Child]) -> None:
        self.processes = processes

    def cpu(self) -> float:
        return sum(proc_cpu(p.pid) for p in self.processes)

    def peak_kib(self) -> int:
        """Summed VmHWM of the worker processes (one process: its own peak RSS)."""
        return sum(proc_status(p.pid)["VmHWM"] for p in self.processes)

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


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


def start_gateway(children: Children, instance: Instance, emulators: Emulators, setting: Setting) -> Gateway:
    env = base_env()
    env.update(
        PUSHGATE_DATABASE_URL=instance.database_url,
        PUSHGATE_INSTANCE_PATH=str(instance.folder),
        PUSHGATE_SECRET_KEY=instance.secret_key,
        PUSHGATE_APNS_ENDPOINT=emulators.apns_url,
        PUSHGATE_FCM_ENDPOINT=emulators.fcm_url,
        PUSHGATE_CA_BUNDLE=str(emulators.ca_path),
        PUSHGATE_WORKER="off",  # nothing else in this process; the worker command runs its own
        PUSHGATE_LOG_LEVEL="WARNING",
    )
    if setting.batch:
        env["PUSHGATE_WORKER_BATCH_SIZE"] = str(setting.batch)
    if setting.concurrency:
        env["PUSHGATE_WORKER_CONCURRENCY"] = str(setting.concurrency)
    argv = [sys.executable, "-m", "flask", "--app", "wsgi", "worker"]
    processes = [
        children.start(f"gateway-worker-{instance.subscriptions}-{setting.label}-{len(children.all)}", argv, env)
        for _ in range(setting.workers)
    ]
    for process in processes:
        process.wait_for(r"worker running")
    return Gateway(processes)


def run_delivery(
    instance: Instance,
    gateway: Gateway,
    emulators: Emulators,
    platform_name: str,
    setting: Setting,
    round_no: int,
    timeout: float,
) -> Phase:
    from sqlalchemy import func, select

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
            by_status = dict(
                conn.execute(
                    select(BroadLog.status, func.count())
                    .where(BroadLog.delivery_id == delivery_id)
                    .group_by(BroadLog.status)
                ).all()
            )
            resent = conn.scalar(
                select(func.count()).where(BroadLog.delivery_id == delivery_id, BroadLog.resent_after_crash.is_(True))
            )
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


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


HEADER = (
    f"{'phase':<12}{'platform':<9}{'subs':>8}{'setting':>13}{'round':>6}{'msgs':>8}{'seconds':>9}{'msgs/s':>8}"
    f"{'CPU ms/msg':>11}{'peer ms/msg':>12}{'start s':>8}  check"
)


def phase_line(p: Phase) -> str:
    return (
        f"{p.kind:<12}{p.platform:<9}{p.scale or '-':>8}{p.setting:>13}{p.round:>6}{p.messages:>8}{p.elapsed:>9.2f}"
        f"{p.rate:>8.0f}{p.cpu / p.messages * 1000:>11.3f}{p.peer_cpu / p.messages * 1000:>12.3f}"
        f"{'-' if p.started_after is None else f'{p.started_after:.2f}':>8}  {'ok' if p.ok else 'FAILED'}"
    )


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


Memory = dict[tuple[int, str], dict[str, int]]  # (subscriptions, setting) -> {"peak", "idle"} in KiB


def baseline_of(phases: list[Phase], kind: str, run: Phase) -> Phase | None:
    """The baseline phase of ``kind`` paired with ``run``: same platform, setting and round."""
    return next(
        (
            b
            for b in phases
            if b.kind == kind and b.platform == run.platform and b.setting == run.setting and b.round == run.round
        ),
        None,
    )


def report_one_delivery(phases: list[Phase]) -> None:
    """Each platform's figure in the delivery to all, against the raw clients sending both platforms
    at once in one process (``baseline-both``, the same round), and against that platform alone."""
    combined = [p for p in phases if p.kind == "one-delivery"]
    if not combined:
        return
    print()
    print(
        "one delivery to all subscriptions (both platforms at once, one worker): per platform, creation to its "
        "last\nfinal broadLog row; against the raw clients sending both platforms at once in one process (the "
        "same round),\nand against that platform's raw client alone"
    )
    for p in combined:
        both, alone = baseline_of(phases, "baseline-both", p), baseline_of(phases, "baseline", p)
        ratio = f"{p.rate / both.rate:.2f}" if both else "-"
        print(
            f"  {p.platform:<8}{p.scale:>8}{p.setting:>13} r{p.round}: {p.messages} in {p.elapsed:.2f}s = "
            f"{p.rate:.0f}/s; raw clients both at once {both.rate if both else 0:.0f}/s, ratio {ratio}; "
            f"alone {alone.rate if alone else 0:.0f}/s, ratio {p.rate / alone.rate if alone else 0:.2f}"
        )


SCENARIOS = (("alone", "end-to-end", "baseline"), ("to all", "one-delivery", "baseline-both"))


def print_ratios(args: argparse.Namespace, phases: list[Phase], settings: list[Setting]) -> None:
    """One summary line per scenario, platform, scale and setting: the median paired ratio."""
    for (scenario, kind, base_kind), platform_name in itertools.product(SCENARIOS, PLATFORMS):
        scales = sorted({p.scale for p in phases if p.kind == kind})
        for scale, setting in itertools.product(scales, settings):
            runs = [
                p
                for p in phases
                if p.kind == kind and p.platform == platform_name and p.scale == scale and p.setting == setting.label
            ]
            if not runs:
                continue
            best = max(runs, key=lambda p: p.rate)
            line = (
                f"{scenario:<9}{platform_name:<9}{scale:>8}{setting.label:>13}{setting.window:>7}"
                f"{best.rate:>13.0f}{best.cpu / best.messages * 1000:>7.3f}"
            )
            pairs = [(run, base) for run in runs if (base := baseline_of(phases, base_kind, run)) is not None]
            if not pairs:
                print(f"{line}{'-':>11}{'-':>7}{'-':>7}  (no baseline at this scale)")
                continue
            ratio = statistics.median(run.rate / base.rate for run, base in pairs)
            base_best = max((base for _, base in pairs), key=lambda p: p.rate)
            listed = " ".join(f"{run.rate:.0f}/{base.rate:.0f}" for run, base in pairs)
            if scale != args.subscriptions:
                listed += f"  (baseline: the {args.subscriptions} run's)"
            print(
                f"{line}{base_best.rate:>11.0f}{base_best.cpu / base_best.messages * 1000:>7.3f}"
                f"{ratio:>7.2f}  {'met' if ratio >= 0.8 else 'NOT met':<13}{listed}"
            )


def report(args: argparse.Namespace, phases: list[Phase], memory: Memory, settings: list[Setting]) -> int:
    print()
    print("=" * 108)
    print(
        f"SUMMARY over {args.rounds} round(s). Each end-to-end run is paired with the baseline run just before it "
        "(same\nplatform, same emulators, seconds apart); ratio = end-to-end / baseline msgs/s, the median of the "
        "pairs\n(all pairs listed). CPU = ms per message of the gateway worker process, or of the baseline client."
    )
    print(
        "scenario: 'alone' = a delivery to one platform against that platform's raw client; 'to all' = one "
        "delivery to\nboth platforms (the issue's scenario) against the raw clients sending both at once in one process"
    )
    print(
        f"{'scenario':<9}{'platform':<9}{'subs':>8}{'setting':>13}{'window':>7}{'end-to-end/s':>13}{'CPU':>7}"
        f"{'baseline/s':>11}{'CPU':>7}{'ratio':>7}  {'goal >= 0.80':<13}pairs"
    )
    print_ratios(args, phases, settings)
    report_one_delivery(phases)
    print()
    print("gateway worker memory: VmHWM (peak RSS) of `flask --app wsgi worker` after its deliveries")
    for (scale, label), figures in sorted(memory.items()):
        print(
            f"  {scale:>7} subscriptions, {label:>12}: peak {mib(figures['peak'])}   "
            f"(idle after start {mib(figures['idle'])})"
        )
    first = settings[0].label
    small, large = memory.get((args.subscriptions, first)), memory.get((args.scale, first))
    if small and large and args.scale != args.subscriptions:
        ratio = large["peak"] / small["peak"]
        print(
            f"  peak ratio {args.scale}/{args.subscriptions} ({first}) = {ratio:.2f}   (goal <= 1.50: "
            f"{'met' if ratio <= 1.5 else 'NOT met'}); above idle: {(small['peak'] - small['idle']) / 1024:.1f} MiB "
            f"-> {(large['peak'] - large['idle']) / 1024:.1f} MiB"
        )
    failed = [p for p in phases if not p.ok]
    if failed:
        print(f"\nFAILED verification: {len(failed)} phase(s):", file=sys.stderr)
        for p in failed:
            print(f"  {p.kind} {p.platform} {p.scale} {p.setting} r{p.round}: {p.detail}", file=sys.stderr)
        return 1
    print(
        "\nverified: every broadLog row Sent, each token accepted exactly once by its emulator (no loss, no "
        "duplicate), every baseline message accepted"
    )
    return 0


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/send.py",
        description="Send one delivery per platform through a gateway worker process (flask --app wsgi "
        "worker) to the local APNs and FCM emulators, and the same number of pushes with the bare client "
        "libraries (aioapns, firebase-admin send_each_async), all as separate processes. Prints "
        "notifications/s end to end (delivery created to last broadLog row final), the baseline, their "
        "ratio (goal >= 0.8), and the worker's peak memory at --subscriptions and at --scale "
        "subscriptions (goal: ratio <= 1.5).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--subscriptions", type=int, default=20_000, help="subscriptions of the throughput run (half iOS, half Android)"
    )
    parser.add_argument(
        "--scale", type=int, default=100_000, help="subscriptions of the memory run (fresh instance and worker process)"
    )
    parser.add_argument("--quick", action="store_true", help="skip the --scale run")
    parser.add_argument("--platform", choices=("both", *PLATFORMS), default="both", help="platforms to run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of (baseline, end to end) at --subscriptions; the best of each is kept",
    )
    parser.add_argument(
        "--batch-size", type=int, default=0, help="PUSHGATE_WORKER_BATCH_SIZE of the worker (0: the gateway's default)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="PUSHGATE_WORKER_CONCURRENCY of the worker (0: the gateway's default)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing each delivery (peak memory is then their sum)"
    )
    parser.add_argument(
        "--sweep",
        type=parse_setting,
        nargs="+",
        metavar="BATCHxCONC[xWORKERS]",
        default=[],
        help="compare these worker settings (fresh worker processes each) at --subscriptions, "
        "e.g. --sweep 100x3 150x2 150x1x2; the first is also the one of the --scale run",
    )
    parser.add_argument(
        "--baseline-concurrency",
        type=int,
        default=100,
        help="APNs baseline: requests in flight at most. Bare aioapns is fastest here at about "
        "100; at 1000 it is 30-40%% slower (h2 walks every open stream to open one) and a burst "
        "can fail requests with MaxAttemptsExceeded",
    )
    parser.add_argument("--no-baseline", action="store_true", help="end to end only")
    parser.add_argument(
        "--no-one-delivery",
        action="store_true",
        help="skip the delivery to all subscriptions at once (run after the per-platform deliveries)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one phase may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (databases, logs)")
    args = parser.parse_args(argv)
    if args.subscriptions < 2 or args.scale < 2 or args.rounds < 1:
        parser.error("need --subscriptions >= 2, --scale >= 2, --rounds >= 1")
    if args.batch_size < 0 or args.concurrency < 0 or args.baseline_concurrency < 1:
        parser.error("--batch-size and --concurrency must be >= 0, --baseline-concurrency >= 1")
    if args.sweep and (args.batch_size or args.concurrency or args.workers != 1):
        parser.error("give either --sweep or --batch-size/--concurrency/--workers")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def print_config(args: argparse.Namespace, emulators: Emulators, settings: list[Setting], scales: list[int]) -> None:
    print("pushgate send benchmark")
    print(f"command:    {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"machine:    {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}; "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    print(f"code:       {code_version(MEASURED_CODE)}")
    print(
        f"runs:       subscriptions {', '.join(map(str, scales))} (half iOS, half Android), platforms "
        f"{args.platform}, rounds {args.rounds} at {args.subscriptions}"
    )
    windows = ", ".join(
        f"{s.label} (window {s.window} = {s.window / args.subscriptions:.1%} of {args.subscriptions})" for s in settings
    )
    print(f"gateway:    flask --app wsgi worker, SQLite (WAL); batch x concurrency: {windows}")
    print(
        f"baseline:   bench/send_baseline.py: aioapns (<= {args.baseline_concurrency} in flight), "
        "firebase-admin send_each_async (chunks of 500, one after the other)"
    )
    print(f"emulators:  APNs {emulators.apns_url}, FCM {emulators.fcm_url} (separate processes, one CA)")
    print(f"message:    {json.dumps(MESSAGE)}")
    print()


def run_gateway_phases(
    children: Children,
    instance: Instance,
    emulators: Emulators,
    setting: Setting,
    platforms: list[str],
    round_no: int,
    with_baseline: bool,
    args: argparse.Namespace,
    phases: list[Phase],
    memory: Memory,
) -> None:
    """One fresh worker process; per platform the raw-client baseline (while the worker idles) and then
    one delivery, so that each ratio compares two runs made a few seconds apart. The worker's peak RSS
    after its deliveries is kept for round 1."""
    gateway = start_gateway(children, instance, emulators, setting)
    try:
        idle = gateway.peak_kib()
        for platform_name in platforms:
            if with_baseline:
                count = len(instance.tokens[platform_name])
                for phase in run_baseline(children, emulators, platform_name, count, setting, round_no, args):
                    report_phase(phases, phase)
            report_phase(
                phases, run_delivery(instance, gateway, emulators, platform_name, setting, round_no, args.timeout)
            )
        if len(platforms) == len(PLATFORMS) and not args.no_one_delivery:
            if with_baseline:
                count = len(instance.tokens["ios"])
                for phase in run_baseline(children, emulators, "both", count, setting, round_no, args):
                    report_phase(phases, phase)
            for phase in run_one_delivery_to_all(instance, gateway, emulators, setting, round_no, args.timeout):
                report_phase(phases, phase)
        peak = gateway.peak_kib()
        if round_no == 1:
            memory[(instance.subscriptions, setting.label)] = {"peak": peak, "idle": idle}
        print(f"{'':<12}worker {setting.label}: peak RSS {mib(peak)} (idle {mib(idle)})", flush=True)
    finally:
        gateway.stop()


def report_phase(phases: list[Phase], phase: Phase) -> None:
    phases.append(phase)
    print(phase_line(phase), flush=True)
    if not phase.ok:
        print(f"    {phase.detail}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    end_children_on_signals()  # so that `finally` ends every child
    run_started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="pushgate-send-"))
    children = Children(workdir)
    phases: list[Phase] = []
    memory: Memory = {}
    settings = args.sweep or [Setting(args.batch_size, args.concurrency, args.workers)]
    platforms = list(PLATFORMS) if args.platform == "both" else [args.platform]
    scales = [args.subscriptions] + ([] if args.quick or args.scale == args.subscriptions else [args.scale])
    try:
        emulators = start_emulators(children, workdir, inbox_limit=max(200_000, args.scale))
        print_config(args, emulators, settings, scales)
        print(HEADER)
        for scale in scales:
            prepared = time.perf_counter()
            instance = prepare_instance(workdir, scale, emulators)
            print(f"-- {scale} subscriptions: instance ready in {time.perf_counter() - prepared:.1f}s", flush=True)
            primary = scale == args.subscriptions
            for round_no in range(1, (args.rounds if primary else 1) + 1):
                for setting in settings if primary else settings[:1]:
                    run_gateway_phases(
                        children,
                        instance,
                        emulators,
                        setting,
                        platforms,
                        round_no,
                        primary and not args.no_baseline,
                        args,
                        phases,
                        memory,
                    )
        print()
        for p in phases:
            print(f"  {p.kind} {p.platform} {p.scale or ''} {p.setting} r{p.round}: {p.detail}")
        status = report(args, phases, memory, settings)
        print(f"total runtime {time.perf_counter() - run_started:.0f}s")
        return status
    finally:
        children.stop_all()
        remove_workdir(workdir, args.keep)


if __name__ == "__main__":
    exit_with(main, "every child process stopped")

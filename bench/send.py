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

Goals: iOS end-to-end at least 0.8 of aioapns alone (issue 3); Android at least 2.0x a bare
firebase-admin ``send_each_async`` loop, alone and in the delivery to all against the raw clients
sending both, with at most 0.35 ms of worker CPU per FCM message (issue 18); peak memory at
100,000 subscriptions at most 1.5 times that at 20,000. Then the FCM emulator's own ceiling
(bench/send_ceiling.py: h2load against it), so that a figure limited by the emulator says so.
Time is never asserted: this prints figures.

Experiments: ``--sweep`` compares worker settings (``BATCHxCONCURRENCY[xWORKERS]``, each a fresh set
of worker processes; the in-flight window is their product). To measure a candidate code change,
run this from a ``git worktree`` of each version, one after the other.

This module is the command line and the order of the runs; the parts it drives:
``bench/send_fixture.py`` (the emulators and the instance), ``bench/send_gateway.py`` (the worker
settings and processes), ``bench/send_phases.py`` (the measured steps, each verified) and
``bench/send_report.py`` (the printed figures and the exit status).

    python bench/send.py                       # 20,000 then 100,000 subscriptions (about 4 minutes)
    python bench/send.py --quick               # 20,000 only
    python bench/send.py --batch-size 150 --concurrency 2
    python bench/send.py --quick --rounds 2 --sweep 100x3 150x2 150x1x2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the project's packages, when run as ``python bench/send.py``

from bench import send_ceiling  # noqa: E402
from bench.common import code_version, end_children_on_signals, exit_with, remove_workdir  # noqa: E402
from bench.send_fixture import Children, Emulators, Instance, prepare_instance, start_emulators  # noqa: E402
from bench.send_gateway import Setting, parse_setting, start_gateway  # noqa: E402
from bench.send_phases import MESSAGE, PLATFORMS, Phase, run_baseline, run_delivery, run_one_delivery_to_all  # noqa: E402
from bench.send_report import HEADER, Memory, mib, report, report_phase  # noqa: E402

#: What the figures measure: uncommitted changes here are named in the header.
MEASURED_CODE = ("push/", "core/", "domain/", "gateway/", "store/", "wsgi.py")


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
    parser.add_argument(
        "--ceiling-requests",
        type=int,
        default=20_000,
        help="requests h2load sends to measure the FCM emulator's own ceiling (0: skip it)",
    )
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


def print_ceiling(emulators: Emulators, phases: list[Phase], requests: int) -> None:
    """The FCM emulator's own ceiling beside the best Android figures (bench/send_ceiling.py)."""
    print()
    print("FCM emulator ceiling: h2load (a C HTTP/2 client) posting one worker-like message, 100 streams a connection")
    best: dict[str, float] = {}
    for p in phases:
        if p.platform == "android" and p.ok and p.kind in ("end-to-end", "baseline"):
            best[p.kind] = max(best.get(p.kind, 0.0), p.rate)
    for connections in (1, 4):
        ceiling = send_ceiling.measure(emulators, requests, connections)
        if isinstance(ceiling, str):
            print(f"  {connections} connection(s): {ceiling}")
            return
        shares = ", ".join(f"{kind} alone {rate:.0f}/s = {rate / ceiling.rate:.2f}" for kind, rate in best.items())
        print(f"  {connections} connection(s): {ceiling.rate:.0f} requests/s; of it: {shares}")


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
        if "android" in platforms and args.ceiling_requests > 0:
            print_ceiling(emulators, phases, args.ceiling_requests)
        print(f"total runtime {time.perf_counter() - run_started:.0f}s")
        return status
    finally:
        children.stop_all()
        remove_workdir(workdir, args.keep)


if __name__ == "__main__":
    exit_with(main, "every child process stopped")

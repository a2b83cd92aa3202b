"""Profile the delivery worker of ``bench/send.py`` in one process, against the emulator processes.

Same fixture as ``bench/send.py`` (emulators as separate processes, a fresh SQLite instance with
one app, N profiles and N subscriptions), but the gateway's worker (``gateway.worker.build_worker``,
the object ``flask --app wsgi worker`` runs) runs here, its event loop on the main thread, with:

``--mode timers`` (default)
    light wall/CPU accounting of the engine's steps, patched onto the classes for this process only:
    ``Engine.claim``, ``Engine.load``, ``Engine.record`` (each in a worker thread: thread CPU and
    wall), ``Builder.build`` (on the loop), the providers' ``send`` (wall only: it interleaves with
    everything else on the loop) and, for FCM, the message check and the request body
    (``push.providers.fcm_message``). The loop thread's and the database threads' total CPU are
    printed beside them.
``--mode cprofile``
    cProfile on the loop thread and on every thread of the loop's default executor (where
    ``asyncio.to_thread`` runs the database work), merged; the top functions by own time and by
    cumulative time. The profilers' clock is each thread's CPU time (``time.thread_time``), so time
    spent waiting for the GIL, for the CPU or for the network is not charged to whoever waited.

    python bench/send_profile.py --platform android --mode cprofile --top 45
    python bench/send_profile.py --platform ios --batch-size 50 --concurrency 6

To A/B a candidate change, run it from a ``git worktree`` of each version.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import cProfile
import functools
import io
import os
import pstats
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import exit_with, remove_workdir  # noqa: E402
from bench.send_fixture import Children, Emulators, Instance, check_inbox, prepare_instance, start_emulators  # noqa: E402
from bench.send_phases import MESSAGE  # noqa: E402


class Timers:
    """Accumulated wall and thread-CPU seconds per step (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.items: dict[str, int] = defaultdict(int)
        self.thread_cpu: dict[str, float] = {}

    def add(self, name: str, wall: float, cpu: float | None, items: int = 0) -> None:
        with self.lock:
            self.wall[name] += wall
            if cpu is not None:
                self.cpu[name] += cpu
            self.calls[name] += 1
            self.items[name] += items


def _size(value: Any) -> int:
    return len(value) if isinstance(value, list | tuple) else 0


def patch_timers(timers: Timers) -> None:
    """Wrap the engine's steps with timers (this process only; nothing on disk changes)."""
    from push import build, engine
    from push.providers import apns, fcm

    def sync(cls: Any, name: str, label: str, count_arg: int | None = None) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                items = _size(args[count_arg]) if count_arg is not None and len(args) > count_arg else 0
                timers.add(label, time.perf_counter() - wall, time.thread_time() - cpu, items)

        setattr(cls, name, wrapper)

    def asynchronous(cls: Any, name: str, label: str) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        async def wrapper(self: Any, messages: Any) -> Any:
            wall = time.perf_counter()
            try:
                return await original(self, messages)
            finally:
                timers.add(label, time.perf_counter() - wall, None, len(messages))

        setattr(cls, name, wrapper)

    sync(engine.Engine, "claim", "engine.claim (thread)")
    sync(engine.Engine, "load", "engine.load (thread)", count_arg=2)
    sync(engine.Engine, "record", "engine.record (thread)", count_arg=3)
    sync(build.Builder, "build", "Builder.build (loop)")
    asynchronous(apns.ApnsProvider, "send", "ApnsProvider.send (wall, interleaved)")
    asynchronous(fcm.FcmProvider, "send", "FcmProvider.send (wall, interleaved)")
    for name, label in (("problem", "fcm message check (loop)"), ("request_body", "fcm request body (loop)")):
        setattr(fcm, name, _timed(getattr(fcm, name), label, timers))


def _timed(function: Any, label: str, timers: Timers) -> Any:
    """``function`` (one message a call), its wall and thread CPU added to ``timers`` under ``label``."""

    @functools.wraps(function)
    def timed(*args: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return function(*args)
        finally:
            timers.add(label, time.perf_counter() - wall, time.thread_time() - cpu, 1)

    return timed


class ProfilingExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor; each of its threads runs under its own profiler or CPU clock."""

    def __init__(self, mode: str) -> None:
        self.profiles: list[cProfile.Profile] = []
        self.cpu_clocks: list[Any] = []
        self.mode = mode
        super().__init__(max_workers=min(32, (os.cpu_count() or 1) + 4), initializer=self._begin)

    def _begin(self) -> None:
        self.cpu_clocks.append(threading.current_thread())
        if self.mode == "cprofile":
            profile = cProfile.Profile(time.thread_time)  # this thread's CPU, not wall (no GIL waits)
            self.profiles.append(profile)
            profile.enable()


def thread_cpu_of(threads: list[threading.Thread]) -> float:
    """CPU seconds of the given (still running or finished) threads, read from /proc."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for thread in threads:
        tid = thread.native_id
        try:
            raw = Path(f"/proc/self/task/{tid}/stat").read_text()
        except (OSError, TypeError):
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def drive(
    args: argparse.Namespace,
    overrides: dict[str, Any],
    app_id: int,
    expected: dict[str, int],
    executor: ProfilingExecutor,
) -> dict[str, Any]:
    from sqlalchemy import select

    from domain.deliveries import DeliveryCreate, create_delivery
    from gateway.app import create_app
    from gateway.runtime import runtime
    from gateway.worker import build_worker
    from push import payloads
    from store.codes import BroadLogStatus
    from store.models import BroadLog, Delivery

    loop = asyncio.get_running_loop()
    loop.set_default_executor(executor)
    application = create_app(overrides=overrides)
    with application.app_context():
        rt = runtime()
    worker = build_worker(rt)
    ready = threading.Event()
    task = asyncio.create_task(worker._run(ready))  # the loop of Worker._main, on this thread
    figures: dict[str, Any] = {}
    platforms = ["ios", "android"] if args.platform == "both" else [args.platform]
    for platform_name in platforms:
        loop_cpu, wall = time.thread_time(), time.perf_counter()
        db_cpu = thread_cpu_of(executor.cpu_clocks)
        with rt.sessions.begin() as session:  # on the loop: a few ms, before the clock matters
            delivery, _ = create_delivery(
                session,
                DeliveryCreate.model_validate(
                    {
                        "app_id": app_id,
                        "name": f"profile {platform_name}",
                        "message": MESSAGE,
                        "target": {"all": True},
                        "platforms": [platform_name],
                    }
                ),
                payloads=payloads,
            )
            delivery_id = delivery.id
        while True:
            await asyncio.sleep(0.05)
            with rt.engine.connect() as conn:
                status = conn.scalar(select(Delivery.status).where(Delivery.id == delivery_id))
                pending = conn.scalar(
                    select(BroadLog.id)
                    .where(BroadLog.delivery_id == delivery_id, BroadLog.status == int(BroadLogStatus.PENDING))
                    .limit(1)
                )
            if status != "scheduled" and pending is None:
                break
            if task.done():
                task.result()
        elapsed = time.perf_counter() - wall
        figures[platform_name] = {
            "delivery_id": delivery_id,
            "messages": expected[platform_name],
            "elapsed": elapsed,
            "loop_cpu": time.thread_time() - loop_cpu,
            "db_threads_cpu": thread_cpu_of(executor.cpu_clocks) - db_cpu,
        }
    assert worker._stopping is not None
    worker._stopping.set()
    await task
    return figures


def verify(instance: Instance, emulators: Emulators, figures: dict[str, Any]) -> int:
    """Check each platform's delivery (every broadLog row Sent, each token accepted once by its
    emulator), print the outcome; the exit status: 1 when anything is wrong."""
    from sqlalchemy import func, select

    from store import db as store_db
    from store.codes import BroadLogStatus
    from store.models import BroadLog

    problems = []
    engine = store_db.make_engine(instance.database_url)
    try:
        for platform_name, f in figures.items():
            with engine.connect() as conn:
                by_status = dict(
                    conn.execute(
                        select(BroadLog.status, func.count())
                        .where(BroadLog.delivery_id == f["delivery_id"])
                        .group_by(BroadLog.status)
                    ).all()
                )
            sent, expected = by_status.get(int(BroadLogStatus.SENT), 0), f["messages"]
            inbox = check_inbox(emulators, platform_name, expected, instance.tokens[platform_name], clear=False)
            if sent != expected or sum(by_status.values()) != expected or not inbox.exact:
                problems.append(
                    f"{platform_name}: {sent}/{expected} Sent, broadLog by status {by_status}; inbox {inbox.records} "
                    f"requests, {inbox.accepted} accepted, {inbox.distinct} distinct, {inbox.missing} missing"
                )
    finally:
        engine.dispose()
    if problems:
        print("\nFAILED verification:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("\nverified: every broadLog row Sent, each token accepted exactly once by its emulator")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/send_profile.py",
        description="Run the delivery worker in this process against the emulator processes and show "
        "where its time goes (step timers, or cProfile over the loop and database threads).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--subscriptions", type=int, default=20_000, help="half iOS, half Android")
    parser.add_argument("--platform", choices=("ios", "android", "both"), default="both")
    parser.add_argument("--mode", choices=("timers", "cprofile"), default="timers")
    parser.add_argument("--batch-size", type=int, default=0, help="PUSHGATE_WORKER_BATCH_SIZE (0: default)")
    parser.add_argument("--concurrency", type=int, default=0, help="PUSHGATE_WORKER_CONCURRENCY (0: default)")
    parser.add_argument("--top", type=int, default=40, help="cprofile: functions listed per ordering")
    parser.add_argument("--dump", type=Path, help="cprofile: also write the merged stats here (pstats)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="pushgate-send-profile-"))
    children = Children(workdir)
    try:
        emulators = start_emulators(children, workdir, inbox_limit=max(200_000, args.subscriptions))
        instance = prepare_instance(workdir, args.subscriptions, emulators)
        overrides: dict[str, Any] = {
            "database_url": instance.database_url,
            "instance_path": instance.folder,
            "secret_key": instance.secret_key,
            "apns_endpoint": emulators.apns_url,
            "fcm_endpoint": emulators.fcm_url,
            "ca_bundle": emulators.ca_path,
            "worker": "off",
            "log_level": "WARNING",
        }
        if args.batch_size:
            overrides["worker_batch_size"] = args.batch_size
        if args.concurrency:
            overrides["worker_concurrency"] = args.concurrency
        expected = {name: len(tokens) for name, tokens in instance.tokens.items()}
        timers = Timers()
        if args.mode == "timers":
            patch_timers(timers)
        executor = ProfilingExecutor(args.mode)
        main_profile = cProfile.Profile(time.thread_time) if args.mode == "cprofile" else None
        if main_profile is not None:
            main_profile.enable()
        figures = asyncio.run(drive(args, overrides, instance.app_id, expected, executor))
        if main_profile is not None:
            main_profile.disable()
        executor.shutdown(wait=True)

        print(
            f"worker in-process, {args.subscriptions} subscriptions, mode {args.mode}, "
            f"batch {overrides.get('worker_batch_size', 'default')} x concurrency "
            f"{overrides.get('worker_concurrency', 'default')}, "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        for platform_name, f in figures.items():
            n = f["messages"]
            print(
                f"{platform_name:<8} {n} msgs in {f['elapsed']:.2f}s = {n / f['elapsed']:.0f} msgs/s; "
                f"loop thread CPU {f['loop_cpu'] / n * 1000:.3f} ms/msg, database threads CPU "
                f"{f['db_threads_cpu'] / n * 1000:.3f} ms/msg"
            )
        total = sum(f["messages"] for f in figures.values())
        if args.mode == "timers":
            print(f"\n{'step':<42}{'calls':>8}{'items':>9}{'wall s':>9}{'CPU s':>8}{'CPU ms/msg':>12}")
            for name in sorted(timers.wall, key=lambda k: -timers.wall[k]):
                cpu = timers.cpu.get(name)
                cpu_text = f"{cpu:>8.2f}{cpu / total * 1000:>12.3f}" if cpu is not None else f"{'-':>8}{'-':>12}"
                print(f"{name:<42}{timers.calls[name]:>8}{timers.items[name]:>9}{timers.wall[name]:>9.2f}{cpu_text}")
            print(f"(ms/msg over all {total} messages of the run)")
        else:
            stream = io.StringIO()
            assert main_profile is not None
            stats = pstats.Stats(main_profile, stream=stream)
            for profile in executor.profiles:
                stats.add(profile)
            stats.strip_dirs()
            if args.dump:
                stats.dump_stats(str(args.dump))
            stats.sort_stats("tottime").print_stats(args.top)
            stats.sort_stats("cumulative").print_stats(args.top)
            print(stream.getvalue())
        return verify(instance, emulators, figures)
    finally:
        children.stop_all()
        remove_workdir(workdir)


if __name__ == "__main__":
    exit_with(main, "every child process stopped")

"""Benchmark: one delivery sent by 1 and by 2 Celery worker processes, and by the embedded worker,
on one PostgreSQL database against the local APNs and FCM emulators (issue 17).

Everything runs as separate processes on 127.0.0.1, started by this script and ended on any exit
(error, Ctrl-C, SIGTERM):

- the emulators (``bench/send_fixture.py``, as ``bench/send.py`` starts them);
- a PostgreSQL database of the run's own (``pushgate_bench_scale`` on 127.0.0.1:5432 by
  default; created, migrated, filled with one app, N profiles and N subscriptions in bulk, and
  dropped at the end; an existing database of that name stops the run; ``test`` is refused);
- the broker: RabbitMQ at ``amqp://guest:guest@127.0.0.1:5672//``, in a virtual host of the run's
  own (``pushgate_bench_scale``, made and deleted with ``rabbitmqctl`` when it may), or
  ``--broker redis://127.0.0.1:6379/7``; its push queue is emptied before each phase;
- per phase, fresh worker processes: (a) ``celery-1``: one ``celery -A pushgate_celery worker
  --pool=threads -c 2 -Q push`` OS process (pushgate's default pool: two batches side by side, as
  the embedded worker sends two); (b) ``celery-2``: two of them; (c) ``embedded``: the embedded
  default (``flask --app wsgi worker``, no broker) on the same database, so that (c) against (a)
  isolates what the broker costs. ``--pool solo`` sends one batch at a time per process,
  ``--pool prefork`` runs ``-c 1``.

Each phase sends one delivery to every subscription of the platforms chosen, created as the API
does and, in Celery mode, started by ``pushgate.start_delivery`` on the broker as a web process
enqueues it. The clock runs from just before the delivery is created to the moment it is
``completed`` (polled every 50 ms): messages/s end to end. Every second the push queue's depth and
the delivery's Pending rows are sampled (printed as two compact series), and the worker
processes' CPU time is taken. Each phase is verified (every broadLog row Sent, each emulator
holding exactly one accepted request per token); any failure exits 1.

Summary: per mode the best rate over the rounds, and the medians of the paired ratios
celery-2 / celery-1 (goal >= 1.0) and celery-1 / embedded (goal >= 0.9). On a small machine the
emulators, PostgreSQL, the broker and the workers share the same cores: a second worker can only
help while the first one leaves a core idle. Time is never asserted: this prints figures.

The platforms: ``ios`` by default (the APNs emulator answers fast, so the workers are what limits
the rate, which is what scaling changes); ``android`` (the FCM emulator, much slower per message,
limits it instead) or ``both`` (subscriptions half and half) on request.

    python bench/scale.py                            # 100,000 subscriptions, iOS (a few minutes)
    python bench/scale.py --quick                    # 20,000
    python bench/scale.py --rounds 2 --platforms both --broker redis://127.0.0.1:6379/7
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the project's packages, when run as ``python bench/scale.py``

from bench.common import code_version, end_children_on_signals, exit_with, remove_workdir  # noqa: E402
from bench.scale_fixture import (  # noqa: E402
    DEFAULT_POSTGRESQL,
    DEFAULT_RABBITMQ,
    Broker,
    Database,
    prefork_cpu,
    start_celery_workers,
    start_embedded,
)
from bench.scale_phases import Result, run_phase, series  # noqa: E402
from bench.send_fixture import Children, Emulators, Instance, prepare_instance, start_emulators  # noqa: E402
from bench.send_gateway import Gateway  # noqa: E402

MEASURED_CODE = ("push/", "core/", "domain/", "gateway/", "store/", "pushgate_celery/", "wsgi.py")
MODES = ("celery-1", "celery-2", "embedded")
PLATFORM_CHOICES = {"ios": ["ios"], "android": ["android"], "both": ["ios", "android"]}
HEADER = f"{'mode':<10}{'round':>6}{'msgs':>8}{'seconds':>9}{'msgs/s':>8}{'worker CPU s':>13}{'CPU ms/msg':>11}"
HEADER += f"{'start s':>8}  check"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/scale.py",
        description="Send one delivery with 1 and with 2 Celery worker processes and with the embedded worker, "
        "on one PostgreSQL database, to the local APNs and FCM emulators. Prints messages/s end to end, the "
        "ratios 2 workers / 1 worker (goal >= 1.0) and Celery-1 / embedded (goal >= 0.9), the push queue's "
        "depth and the Pending rows every second, the workers' CPU time; verifies every token got exactly one "
        "message.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--subscriptions", type=int, default=100_000, help="subscriptions (all sent to each phase)")
    parser.add_argument("--quick", action="store_true", help="20,000 subscriptions")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the three modes (ratios paired per round)")
    parser.add_argument(
        "--platforms",
        choices=tuple(PLATFORM_CHOICES),
        default="ios",
        help="platforms of the subscriptions (both: half and half)",
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="modes to run, in this order")
    parser.add_argument(
        "--broker", default=DEFAULT_RABBITMQ, help="RabbitMQ (a vhost of the bench's own is used) or redis://..."
    )
    parser.add_argument("--postgresql-url", default=DEFAULT_POSTGRESQL, help="the database made and dropped")
    parser.add_argument(
        "--pool",
        choices=("solo", "prefork", "threads"),
        default="threads",
        help="Celery pool of each worker process (threads, pushgate's default: -c --concurrency; "
        "prefork: -c 1; solo: one batch at a time)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=2, help="with --pool threads: tasks side by side in each worker process"
    )
    parser.add_argument(
        "--in-flight", type=int, default=4, help="PUSHGATE_CELERY_BATCHES_IN_FLIGHT of the Celery workers"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one phase may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscriptions = 20_000
    if min(args.subscriptions, args.rounds, args.in_flight, args.concurrency) < 1:
        parser.error("need --subscriptions, --rounds, --in-flight and --concurrency >= 1")
    return args


def print_config(args: argparse.Namespace, emulators: Emulators, broker: Broker, database: Database) -> None:
    print("pushgate scale-out benchmark (Celery workers vs the embedded worker)")
    print(f"command:    {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"machine:    {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}; "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    print(f"code:       {code_version(MEASURED_CODE)}")
    why = {
        "ios": "the APNs emulator answers fast, so the workers limit the rate (what scaling changes)",
        "android": "the FCM emulator is slow per message and limits the rate",
        "both": "half iOS, half Android",
    }[args.platforms]
    print(f"platforms:  {args.platforms} ({why}); {args.subscriptions} subscriptions, rounds {args.rounds}")
    pool = f"threads -c {args.concurrency}" if args.pool == "threads" else args.pool
    print(
        f"modes:      {', '.join(args.modes)}; each Celery worker one OS process, pool {pool}, batches in flight "
        f"{args.in_flight}; embedded: flask --app wsgi worker (PUSHGATE_WORKER_CONCURRENCY default)"
    )
    print(f"database:   PostgreSQL {database.name} (made and dropped by this run)")
    print(f"broker:     {broker.shown}")
    print(f"emulators:  APNs {emulators.apns_url}, FCM {emulators.fcm_url} (separate processes, one CA)")
    print()


def start_mode(
    mode: str, args: argparse.Namespace, children: Children, instance: Instance, emulators: Emulators, broker: Broker
) -> tuple[Gateway, Callable[[], float], Broker | None]:
    """Fresh worker processes of one mode; their CPU-time reader and the broker they consume (None: embedded)."""
    if mode == "embedded":
        gateway = start_embedded(children, instance, emulators)
        return gateway, gateway.cpu, None
    workers = int(mode.rsplit("-", 1)[1])
    broker.empty()
    gateway = start_celery_workers(
        children,
        instance,
        emulators,
        broker,
        workers,
        args.in_flight,
        args.pool,
        args.concurrency,
        f"{mode}-{len(children.all)}",
    )
    return gateway, (lambda: prefork_cpu(gateway)), broker


def print_result(result: Result) -> None:
    print(
        f"{result.mode:<10}{result.round:>6}{result.messages:>8}{result.elapsed:>9.2f}{result.rate:>8.0f}"
        f"{result.cpu:>13.1f}{result.cpu / result.messages * 1000:>11.3f}{result.started_after:>8.2f}  "
        f"{'ok' if result.ok else 'FAILED'}",
        flush=True,
    )
    queue, pending = series(result.samples)
    print(f"    {queue}\n    {pending}", flush=True)
    if not result.ok:
        print(f"    {result.detail}", flush=True)


def ratio(results: list[Result], top: str, bottom: str) -> list[float]:
    """top / bottom rate per round where both ran."""
    by = {(r.mode, r.round): r for r in results}
    rounds = sorted({r.round for r in results})
    return [by[(top, n)].rate / by[(bottom, n)].rate for n in rounds if (top, n) in by and (bottom, n) in by]


def report(results: list[Result]) -> int:
    print("\nsummary (best of the rounds; ratios: median of the per-round ratios)")
    for mode in MODES:
        mine = [r for r in results if r.mode == mode]
        if mine:
            best = max(mine, key=lambda r: r.rate)
            cpu = statistics.median(r.cpu / r.messages * 1000 for r in mine)
            print(f"  {mode:<10} {best.rate:>7.0f} msgs/s ({best.elapsed:.1f} s), worker CPU {cpu:.3f} ms/msg")
    for top, bottom, goal, name in (
        ("celery-2", "celery-1", 1.0, "2 workers / 1 worker"),
        ("celery-1", "embedded", 0.9, "Celery-1 / embedded"),
    ):
        values = ratio(results, top, bottom)
        if values:
            median = statistics.median(values)
            met = "met" if median >= goal else "NOT met"
            shown = ", ".join(f"{v:.2f}" for v in values)
            print(f"  {name:<22} {median:.2f} (rounds: {shown}); goal >= {goal}: {met}")
    failed = [r for r in results if not r.ok]
    if failed:
        for r in failed:
            print(f"FAILED verification: {r.mode} round {r.round}: {r.detail}", file=sys.stderr)
        return 1
    print(
        "\nverified: each delivery completed, every broadLog row Sent, each token accepted exactly once by "
        f"its emulator ({len(results)} deliveries)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    end_children_on_signals()  # so that `finally` ends every child
    run_started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="pushgate-scale-"))
    children = Children(workdir)
    results: list[Result] = []
    database: Database | None = None
    broker: Broker | None = None
    platforms = PLATFORM_CHOICES[args.platforms]
    try:
        broker = Broker(args.broker)
        database = Database(args.postgresql_url)
        emulators = start_emulators(children, workdir, inbox_limit=args.subscriptions + 1000)
        print_config(args, emulators, broker, database)
        prepared = time.perf_counter()
        instance = prepare_instance(workdir, args.subscriptions, emulators, database.url, tuple(platforms))
        database.analyse()
        print(f"instance ready in {time.perf_counter() - prepared:.1f}s\n\n{HEADER}", flush=True)
        for round_no in range(1, args.rounds + 1):
            for mode in args.modes:
                gateway, cpu, used_broker = start_mode(mode, args, children, instance, emulators, broker)
                try:
                    result = run_phase(
                        mode, round_no, instance, emulators, gateway, cpu, used_broker, platforms, args.timeout
                    )
                finally:
                    gateway.stop()
                results.append(result)
                print_result(result)
        status = report(results)
        print(f"total runtime {time.perf_counter() - run_started:.0f}s")
        return status
    finally:
        children.stop_all()
        if database is not None:
            database.drop()
        if broker is not None:
            broker.close()
        remove_workdir(workdir, args.keep)


if __name__ == "__main__":
    exit_with(main, "every child process stopped, the database dropped")

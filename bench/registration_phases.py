"""The measured runs of ``bench/registration.py``: the load process and the rounds that drive it.

``run_load`` runs in the separate load process (it and what it imports at module level use
nothing of the project): it posts every body once over ``concurrency`` keep-alive connections and
returns the elapsed time, each request's latency, the non-200 answers and the process's CPU time.
``run_rounds`` alternates the targets round by round, warms each up, measures it with the server's
CPU time around the load, prints each :class:`Result` as it comes and returns them with the
warm-up errors."""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from typing import Any

import httpx

from bench.registration_fixture import FORM, REGISTER_PATH, TARGETS, USER_AGENT, Fixture, Server, make_bodies
from bench.registration_report import HEADER, Result


def run_load(base_url: str, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    """Send every body once from ``concurrency`` threads, each with its own keep-alive connection.

    One ``httpx.Client`` per thread is httpx's cheapest way to do this: a shared ``AsyncClient``
    costs about three times the client CPU per request at this concurrency (its pool is searched
    on every request), and the load process shares the machine's cores with the servers.
    """
    headers = {"Content-Type": FORM, "User-Agent": USER_AGENT}
    latencies = [0.0] * len(bodies)
    errors: Counter[str] = Counter()
    samples: list[str] = []
    pending = iter(range(len(bodies)))
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)

    def worker() -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=60.0) as client:
            start.wait()
            while True:
                with lock:
                    i = next(pending, None)
                if i is None:
                    return
                started = time.perf_counter()
                try:
                    response = client.post(REGISTER_PATH, content=bodies[i])
                    outcome, detail = str(response.status_code), response.text.strip()[:200]
                except Exception as exc:  # a refused, reset or timed-out request counts as an error
                    outcome, detail = type(exc).__name__, str(exc)[:200]
                latencies[i] = time.perf_counter() - started
                if outcome != "200":
                    with lock:
                        errors[outcome] += 1
                        if len(samples) < 5:
                            samples.append(f"{outcome}: {detail}")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    cpu_started = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "elapsed": elapsed,
        "latencies": latencies,
        "errors": dict(errors),
        "samples": samples,
        "client_cpu": time.process_time() - cpu_started,
    }


def run_rounds(
    args: argparse.Namespace, fx: Fixture, servers: list[Server], pool: Any
) -> tuple[list[Result], Counter[str]]:
    """Alternate the targets for ``args.rounds`` rounds: warm up, then measure; print each run."""
    by_name = {server.name: server for server in servers}
    results: list[Result] = []
    warmup_errors: Counter[str] = Counter()
    print(f"round {HEADER}")
    for round_no in range(1, args.rounds + 1):
        order = TARGETS if round_no % 2 else tuple(reversed(TARGETS))
        for name in order:
            server = by_name[name]
            tag = f"{name[0]}{round_no}"
            if args.warmup:
                warm = make_bodies(fx, f"{tag}w", args.warmup, args.known_user_share)
                figures = pool.apply(run_load, (server.url, warm, args.concurrency))
                warmup_errors.update({f"{name}:{k}": v for k, v in figures["errors"].items()})
                for sample in figures["samples"]:
                    print(f"      {name} warm-up error sample: {sample}")
            bodies = make_bodies(fx, tag, args.requests, args.known_user_share)
            cpu_before = server.cpu_seconds()
            figures = pool.apply(run_load, (server.url, bodies, args.concurrency))
            cpu_after = server.cpu_seconds()
            result = Result(
                target=name,
                round=round_no,
                requests=len(bodies),
                elapsed=figures["elapsed"],
                latencies=figures["latencies"],
                errors=figures["errors"],
                samples=figures["samples"],
                server_cpu=cpu_after - cpu_before,
                client_cpu=figures["client_cpu"],
            )
            results.append(result)
            print(f"{round_no:<6}{result.line()}", flush=True)
            for sample in result.samples:
                print(f"      error sample: {sample}")
    return results, warmup_errors

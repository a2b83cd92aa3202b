"""Benchmark: the broadLog export to the local Experience Platform peer, against a bare httpx loop.

Everything runs on 127.0.0.1, started by this script and ended on any exit:

- the peer, in its own process: ``python -m sync.peers.platform --port 0`` (IMS, Schema Registry,
  Catalog and streaming ingestion; it checks every envelope and every record against the dataset's
  schema, as the Platform's streaming validation does);
- a fresh SQLite (WAL) instance in a temporary folder (migrated with ``store.db.upgrade``) holding
  one app, ``--profiles`` profiles each with one Android subscription (with an ECID), one delivery
  and ``--rows`` final broadLog rows (9 in 10 Sent, the rest Failed), bulk-inserted an hour in the
  past so that the export takes them all;
- provisioning (``sync provision``) in this process.

Then, in this process and in this order:

1. **bare loop**: every row of the instance mapped to XDM, wrapped in its streaming envelope and
   packed into the same requests as the export makes (under 1 MB), all before the clock starts;
   the clock runs while one ``httpx.Client`` posts them one after the other to
   ``/collection/batch/{inlet}`` and checks each 207 answer. No database, no mapping, no
   validation, no watermark;
2. the peer is reset and provisioned again (fresh datasets), then **export**: the ``logs`` job as
   ``flask --app wsgi sync logs --stream broadlog`` runs it (``sync.service.run_now``), timed from
   the call to its return: reading the rows, mapping, validating, packing, sending on the second
   thread, committing the watermark after each request.

Each phase is verified on the peer (``GET /_peer/state``): as many records as rows, as many
distinct ``_id`` values, none failed. Figures are records per second; the ratio is export / bare
loop (goal of issue 5: at least 0.7). With ``--rounds N`` the pair runs N times (peer reset and
datasets provisioned again before each phase, the export's watermark cleared) and the median ratio
is given, so that load from other processes on a small machine hits both sides of a ratio alike.
Time is never asserted: this prints figures.

Both loops are bound by the peer, which checks every record with the ``jsonschema`` package
(about 0.3 ms a record on one core); the export's own work (read, map, validate, serialise) runs
on this process's core while the peer works on a request.

    python bench/export.py                   # 200,000 rows (a few minutes)
    python bench/export.py --rows 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, insert  # noqa: E402

from bench.common import code_version  # noqa: E402
from core.config import Settings, load_settings  # noqa: E402
from store import db as store_db  # noqa: E402
from store.models import App, BroadLog, Delivery, Profile, Subscription, SyncState  # noqa: E402
from store.queries import state as sync_state  # noqa: E402
from sync import service  # noqa: E402
from sync.export.tables import TABLES  # noqa: E402
from sync.peers.platform_api.state import PeerConfig  # noqa: E402
from sync.platform.client import Platform  # noqa: E402
from sync.platform.streaming import Envelopes, dumps, fits, request_body  # noqa: E402
from sync.xdm import tenant_key, validator  # noqa: E402

#: What the figures measure: uncommitted changes here are named in the header.
MEASURED_CODE = ("sync/", "core/", "store/", "bench/export.py")


@contextmanager
def peer_process() -> Iterator[str]:
    """``python -m sync.peers.platform`` on a free port; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sync.peers.platform", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        if not first.startswith("Platform peer listening on "):
            raise SystemExit(f"the peer did not start: {first!r}")
        yield first.removeprefix("Platform peer listening on ")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def seed(settings: Settings, rows: int, profiles: int) -> None:
    engine = store_db.make_engine(settings.resolved_database_url)
    old = datetime.now(UTC) - timedelta(hours=1)
    with engine.begin() as conn:
        app_id = conn.execute(
            insert(App).values(name="Bench", created_at=old, updated_at=old).returning(App.id)
        ).scalar_one()
        conn.execute(
            insert(Profile),
            [
                {
                    "external_id": f"cust-{n:07d}",
                    "attributes": {},
                    "push_consent": "y",
                    "created_at": old,
                    "updated_at": old,
                }
                for n in range(profiles)
            ],
        )
        conn.execute(
            insert(Subscription),
            [
                {
                    "app_id": app_id,
                    "platform": "android",
                    "token": f"fcm-token-{n:07d}-" + "x" * 140,
                    "sdk": "edge",
                    "push_provider": "fcm",
                    "profile_id": n + 1,
                    "ecid": f"{n:038d}",
                    "additional_params": {},
                    "disabled": False,
                    "created_at": old,
                    "last_registered_at": old,
                }
                for n in range(profiles)
            ],
        )
        delivery_id = conn.execute(
            insert(Delivery)
            .values(app_id=app_id, name="Winter sale", message={}, target={}, platforms=["android"], status="completed")
            .returning(Delivery.id)
        ).scalar_one()
        chunk = 20_000
        for start in range(0, rows, chunk):
            batch = []
            for n in range(start, min(rows, start + chunk)):
                failed = n % 10 == 9
                batch.append(
                    {
                        "delivery_id": delivery_id,
                        "subscription_id": n % profiles + 1,
                        "profile_id": n % profiles + 1,
                        "channel": 42,
                        "address": "fcm-token",
                        "status": 2 if failed else 1,
                        "failure_type": 2 if failed else None,
                        "failure_reason": 3 if failed else None,
                        "error_message": "UNAVAILABLE: timeout" if failed else None,
                        "provider_message_id": None if failed else f"projects/bench/messages/0:{n}",
                        "attempts": 1,
                        "resent_after_crash": False,
                        "created_at": old,
                        "event_date": old + timedelta(microseconds=n),
                    }
                )
            conn.execute(insert(BroadLog), batch)
    engine.dispose()


def prebuilt_requests(settings: Settings, sessions: Any) -> tuple[list[bytes], int]:
    """The export's requests, built ahead: every row mapped, validated, wrapped and packed."""
    with sessions() as session:
        dataset = sync_state.get_value(session, "dataset:broadlog")
        schema = sync_state.get_value(session, "schema:broadlog")
    assert dataset and schema
    envelopes = Envelopes(schema_id=schema, dataset_id=dataset, org_id=settings.aep_org_id)
    table = TABLES["broadlog"]
    check = validator("broadlog", settings.aep_tenant_id)
    key = tenant_key(settings.aep_tenant_id)
    requests: list[bytes] = []
    messages: list[bytes] = []
    size = count = 0
    with sessions() as session:
        for row in table.reader.rows(session, session.execute(table.reader.query(None, datetime.now(UTC))).all()):
            record = table.record(row, key, "CRMID")
            assert check.problem(record) is None
            message = envelopes.wrap(dumps(record))
            if messages and not fits(size, len(messages), len(message)):
                requests.append(request_body(messages))
                messages, size = [], 0
            messages.append(message)
            size += len(message)
            count += 1
    if messages:
        requests.append(request_body(messages))
    return requests, count


def bare_loop(settings: Settings, requests: list[bytes]) -> float:
    """Post the prebuilt requests one after the other; returns the seconds it took."""
    with Platform(settings) as aep:
        token = aep.tokens.token()
        headers = {**aep.tokens.headers(token), "Content-Type": "application/json"}
        url = aep.streaming(f"/collection/batch/{settings.aep_inlet_id}")
        started = time.perf_counter()
        for body in requests:
            response = aep.http.post(url, content=body, headers=headers)
            answers = response.json()["responses"]
            if response.status_code != 207 or any("xactionId" not in a for a in answers):
                raise SystemExit(f"bare loop: HTTP {response.status_code}: {response.text[:300]}")
        return time.perf_counter() - started


def verify(peer_url: str, sessions: Any, rows: int, phase: str) -> str:
    with sessions() as session:
        dataset = sync_state.get_value(session, "dataset:broadlog")
    state = httpx.get(f"{peer_url}/_peer/state", timeout=60).json()
    held = next(d for d in state["datasets"] if d["id"] == dataset)
    counts = (held["records"], held["distinct_ids"], held["failed"])
    line = f"{phase}: peer holds {counts[0]} records, {counts[1]} distinct _id, {counts[2]} failed"
    if counts != (rows, rows, 0):
        raise SystemExit(f"FAILED verification: {line}, expected {rows}, {rows}, 0")
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=1, help="bare loop + export pairs; the median ratio is given")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    print("pushgate export benchmark")
    print(f"command:    {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"machine:    {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}; "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    print(f"code:       {code_version(MEASURED_CODE, untracked=True)}")
    print(
        f"data:       {args.rows} broadLog rows (90% Sent, 10% Failed), {args.profiles} profiles with one subscription"
    )
    with tempfile.TemporaryDirectory(prefix="pushgate-bench-export-") as folder, peer_process() as peer_url:
        print(f"peer:       python -m sync.peers.platform at {peer_url} (separate process)")
        config = PeerConfig()
        settings = load_settings(
            {
                "database_url": f"sqlite:///{Path(folder) / 'pushgate.db'}",
                "instance_path": Path(folder),
                "secret_key": "",
                "aep_ims_url": peer_url,
                "aep_platform_url": peer_url,
                "aep_streaming_url": peer_url,
                "aep_client_id": config.client_id,
                "aep_client_secret": config.client_secret,
                "aep_org_id": config.org_id,
                "aep_tenant_id": config.tenant_id,
                "aep_sandbox": config.sandbox,
                "aep_inlet_id": config.inlet_id,
                "sync_export_batch_threshold": 100_000_000,
            }
        )
        started = time.perf_counter()
        store_db.upgrade(settings.resolved_database_url)
        seed(settings, args.rows, args.profiles)
        engine = store_db.make_engine(settings.resolved_database_url)
        sessions = store_db.make_session_factory(engine)
        print(f"instance:   seeded in {time.perf_counter() - started:.1f}s")
        results: list[dict[str, Any]] = []

        def provisioned() -> None:
            httpx.post(f"{peer_url}/_peer/reset", timeout=60)
            run = service.run_now("provision", settings=settings, sessions=sessions, trigger="cli", options={})
            if run.status != "succeeded":
                raise SystemExit(f"provisioning failed: {run.error}")

        ratios: list[float] = []
        for round_number in range(1, args.rounds + 1):
            print(f"-- round {round_number}")
            provisioned()
            built = time.perf_counter()
            requests, records = prebuilt_requests(settings, sessions)
            sizes = [len(body) for body in requests]
            print(
                f"requests:   {len(requests)} of up to {max(sizes)} bytes "
                f"({records / len(requests):.0f} records each), built in {time.perf_counter() - built:.1f}s"
            )
            bare = bare_loop(settings, requests)
            bare_rate = records / bare
            print(f"bare loop:  {records} records in {bare:.2f}s = {bare_rate:,.0f} records/s")
            print("  " + verify(peer_url, sessions, records, "bare loop"))
            provisioned()
            with sessions.begin() as session:  # a first export of every row
                session.execute(delete(SyncState).where(SyncState.stream == "export:broadlog"))
            started = time.perf_counter()
            run = service.run_now(
                "logs", settings=settings, sessions=sessions, trigger="cli", options={"streams": ["broadlog"]}
            )
            took = time.perf_counter() - started
            if run.status != "succeeded":
                raise SystemExit(f"export failed: {run.error}")
            outcome = run.summary["details"][0]
            rate = outcome["applied"] / took
            print(
                f"export:     {outcome['applied']} records in {took:.2f}s = {rate:,.0f} records/s "
                f"({outcome['details']['mode']}, {outcome['details']['retried']} retried, "
                f"{outcome['rejected']} rejected)"
            )
            print("  " + verify(peer_url, sessions, records, "export"))
            ratios.append(rate / bare_rate)
            print(f"ratio:      {rate / bare_rate:.2f}")
            results.append({"round": round_number, "bare_rps": round(bare_rate), "export_rps": round(rate)})
        print()
        print(
            f"ratio export / bare loop: median {statistics.median(ratios):.2f} over {len(ratios)} round(s) "
            f"(goal >= 0.7); load average {os.getloadavg()[0]:.2f} at the end"
        )
        print(json.dumps({"rows": args.rows, "rounds": results, "median_ratio": round(statistics.median(ratios), 3)}))
        print("verified: after each phase the peer held one record per row, each _id once, none failed")
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

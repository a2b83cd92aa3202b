"""Benchmark: what personalisation tables cost the delivery engine, per message.

In one process, with no network: a fresh SQLite (WAL) instance with one app (Android part), N
profiles, N subscriptions and a table ``offers`` of N rows, the key of profile ``i`` being its
``offer_code`` attribute ``K{i}``; one delivery to all, run batch after batch by
``push.engine.Engine`` with a provider that accepts every message at once (so what is measured is
claiming, loading, building and recording, not a provider). Templates compared:

- ``profile``: ``Hello {{ profile.first_name }}`` (no table);
- ``table``: ``{{ tables.offers[profile.attributes.offer_code].title }}``: another row per message;
- ``shared``: ``{{ tables.offers.K1.title }}``: the same row for every message.

For each: messages per second, CPU per message of the event-loop thread (which builds the pushes)
and of the whole process, and the queries on ``lookup_row``. Every message's title is checked.
Time is never asserted: this prints figures.

    python bench/personalisation.py                 # 20,000 messages per template
    python bench/personalisation.py --messages 5000 --batch-size 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the project's packages, when run as ``python bench/personalisation.py``

from bench.common import code_version, exit_with, remove_workdir  # noqa: E402

MEASURED_CODE = ("push/", "domain/personalisation.py", "store/")
TEMPLATES = {
    "profile": ("Hello {{ profile.first_name }}", lambda i: "Hello Ann"),
    "table": ("{{ tables.offers[profile.attributes.offer_code].title }}", lambda i: f"Offer {i}"),
    "shared": ("{{ tables.offers.K1.title }}", lambda i: "Offer 1"),
}


class Accepting:
    """A provider that accepts every message at once and keeps each title."""

    platform = "android"

    def __init__(self) -> None:
        self.titles: dict[str, str] = {}

    async def send(self, messages: Sequence[Any]) -> list[Any]:
        from push.providers.base import SendResult

        for message in messages:
            self.titles[message.token] = message.payload["data"]["adb_title"]
        return [SendResult(m.key, provider_message_id=f"pm-{m.key}") for m in messages]

    async def close(self) -> None:
        return None


def prepare(folder: Path, n: int) -> tuple[str, int]:
    """A migrated database with one app, n profiles, n subscriptions, table ``offers``; (url, app id)."""
    from sqlalchemy import insert, select

    from domain import personalisation
    from store import db as store_db
    from store.models import App, AppPlatform, Profile, Subscription
    from store.types import utcnow

    url = f"sqlite:///{folder / 'pushgate.db'}"
    store_db.upgrade(url)
    engine = store_db.make_engine(url)
    sessions = store_db.make_session_factory(engine)
    now = utcnow()
    try:
        with sessions.begin() as session:
            app = App(name="Bench")
            app.platforms = [
                AppPlatform(
                    platform="android",
                    integration_key="bench-android",
                    app_identifier="com.example.bench",
                    credential_kind="fcm_service_account",
                    credentials=b"unused: the provider is local",
                )
            ]
            session.add(app)
            session.flush()
            app_id = app.id
            session.execute(
                insert(Profile),
                [
                    {
                        "external_id": f"bench-{i}",
                        "first_name": "Ann",
                        "attributes": {"offer_code": f"K{i}"},
                        "push_consent": "u",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(n)
                ],
            )
            ids = list(session.scalars(select(Profile.id).order_by(Profile.id)))
            session.execute(
                insert(Subscription),
                [
                    {
                        "app_id": app_id,
                        "platform": "android",
                        "token": f"token-{i}",
                        "sdk": "campaign-classic",
                        "push_provider": "fcm",
                        "profile_id": ids[i],
                        "additional_params": {},
                        "disabled": False,
                        "created_at": now,
                        "last_registered_at": now,
                    }
                    for i in range(n)
                ],
            )
            table_id = personalisation.replace_table(session, "offers", "code", ["title"])
            personalisation.put_rows(session, table_id, ((f"K{i}", {"title": f"Offer {i}"}) for i in range(n)))
    finally:
        engine.dispose()
    return url, app_id


def run(url: str, app_id: int, template: str, batch_size: int) -> dict[str, Any]:
    """One delivery to all with ``template`` as its title, sent to the end."""
    from sqlalchemy import event

    from domain.deliveries import DeliveryCreate, create_delivery
    from push import payloads
    from push.engine import Engine, EngineSettings
    from store import db as store_db

    engine = store_db.make_engine(url)
    sessions = store_db.make_session_factory(engine)
    lookups = 0

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        nonlocal lookups
        lookups += "FROM lookup_row" in statement

    event.listen(engine, "before_cursor_execute", count)
    provider = Accepting()
    delivery_engine = Engine(
        sessions, lambda part: provider, EngineSettings(tracking_key=b"bench" * 8, batch_size=batch_size)
    )
    try:
        with sessions.begin() as session:
            data = {"app_id": app_id, "name": template, "target": {"all": True}, "message": {"title": template}}
            delivery, _ = create_delivery(session, DeliveryCreate.model_validate(data), payloads=payloads)
            delivery_id = delivery.id
        delivery_engine.start_due()

        async def send_all() -> float:
            loop_cpu = time.thread_time()
            while await delivery_engine.run_batch(delivery_id):
                pass
            return time.thread_time() - loop_cpu

        cpu, started = time.process_time(), time.perf_counter()
        loop_cpu = asyncio.run(send_all())
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        engine.dispose()
    return {"titles": provider.titles, "elapsed": elapsed, "cpu": cpu, "loop_cpu": loop_cpu, "lookups": lookups}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/personalisation.py", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="profiles, subscriptions and table rows")
    parser.add_argument("--batch-size", type=int, default=500, help="the engine's batch size")
    parser.add_argument("--rounds", type=int, default=2, help="deliveries per template (the best is shown)")
    args = parser.parse_args(argv)
    if args.messages < 10 or args.batch_size < 1 or args.rounds < 1:
        parser.error("need --messages >= 10, --batch-size >= 1, --rounds >= 1")
    print("pushgate personalisation benchmark (delivery engine, local accepting provider)")
    print(f"command:  {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine:  {os.cpu_count()} CPUs, Python {platform.python_version()}; load {os.getloadavg()[0]:.2f}")
    print(f"code:     {code_version(MEASURED_CODE, untracked=True)}")
    workdir = Path(tempfile.mkdtemp(prefix="pushgate-personalisation-"))
    try:
        url, app_id = prepare(workdir, args.messages)
        print(f"messages: {args.messages} per delivery, batches of {args.batch_size}, {args.rounds} round(s)\n")
        print(f"{'template':>9} {'msg/s':>8} {'loop CPU/msg':>13} {'CPU/msg':>9} {'lookup_row queries':>19}")
        for name, (template, expected) in TEMPLATES.items():
            results = [run(url, app_id, template, args.batch_size) for _ in range(args.rounds)]
            for result in results:
                wanted = {f"token-{i}": expected(i) for i in range(args.messages)}
                if result["titles"] != wanted:
                    raise RuntimeError(f"{name}: some messages were not rendered as expected")
            best = min(results, key=lambda r: r["elapsed"])
            n = args.messages
            print(
                f"{name:>9} {n / best['elapsed']:>8.0f} {best['loop_cpu'] / n * 1e6:>10.0f} us "
                f"{best['cpu'] / n * 1e6:>6.0f} us {best['lookups']:>19}"
            )
        print("\nverified: every message of every delivery carried its expected title")
        return 0
    finally:
        remove_workdir(workdir)


if __name__ == "__main__":
    exit_with(main, "temporary folder removed")

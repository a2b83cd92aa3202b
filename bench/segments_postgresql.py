"""PostgreSQL for ``bench/segments.py --database postgresql``: the throwaway databases, the profiles
and the floor loop.

:class:`Databases` creates every database the run uses on the server of ``--postgresql-url`` and
drops them all at the end: ``{name}`` (migrated, the scale's profiles, analysed), then per round
``{name}_import`` and ``{name}_floor``, copies of it (``CREATE DATABASE ... TEMPLATE``: the
SQLite run copies a file the same way). A database of those names that already exists is never
touched: the run stops and says so. ``test``, ``postgres`` and the templates are refused as names.

``child_floor_postgresql`` is the floor loop on PostgreSQL: the bare loop's download and parse,
every row's identity and status streamed into a temporary table by one bare ``COPY``, then one
``INSERT ... SELECT`` joining ``profile`` into ``audience_member`` in profile id order, committed.
No ledger, rejects, governance, refs or SQLAlchemy: what PostgreSQL itself costs for this import.
"""

from __future__ import annotations

import argparse
import io
import time
from datetime import UTC, datetime
from typing import Any

from bench.segments_fixture import CONTAINER, FIRST_NAMES, crm_id

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/pushgate_bench"
_REFUSED = {"test", "postgres", "template0", "template1"}


def libpq(url: str, database: str | None = None) -> str:
    """A SQLAlchemy URL as psycopg's conninfo, on ``database`` when given."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


class Databases:
    """The run's throwaway databases on one PostgreSQL server; :meth:`close` drops them."""

    def __init__(self, url: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        self.url = url
        self.name = make_url(url).database or ""
        if not self.name or self.name in _REFUSED:
            raise SystemExit(f"--postgresql-url: name a throwaway database (not {self.name or 'none'!r})")
        self.created: list[str] = []
        self._admin = psycopg.connect(libpq(url, "postgres"), autocommit=True)
        taken = self._admin.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", ([self.name, *self.copies()],)
        ).fetchall()
        if taken:
            names = ", ".join(row[0] for row in taken)
            raise SystemExit(
                f"database {names} exists (an earlier run's?): drop it (dropdb -h HOST -U USER NAME) or name "
                "another with --postgresql-url; this benchmark drops only what it created"
            )
        self.server = str(self._admin.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]

    def copies(self) -> tuple[str, str]:
        return f"{self.name}_import", f"{self.name}_floor"

    def url_of(self, database: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).set(database=database).render_as_string(hide_password=False)

    def create(self, database: str, template: str | None = None) -> str:
        """A new database (a copy of ``template`` when given); returns its SQLAlchemy URL."""
        self.drop(database)
        suffix = f" TEMPLATE {template}" if template else ""
        self._admin.execute(f'CREATE DATABASE "{database}"{suffix}')  # names built here, never input
        self.created.append(database)
        if template:  # the copy's writes on disk before the measurement, not during it
            self._admin.execute("CHECKPOINT")
        return self.url_of(database)

    def drop(self, database: str) -> None:
        if database in self.created:
            self._admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            self.created.remove(database)

    def close(self) -> None:
        for database in list(reversed(self.created)):
            self.drop(database)
        self._admin.close()


def fill_template(databases: Databases, rows: int) -> None:
    """``{name}``: migrated, one profile per known ``crmId`` (streamed by ``COPY``), analysed as
    autovacuum would have analysed a table that size."""
    import psycopg

    from store import db as store_db

    databases.drop(databases.name)
    url = databases.create(databases.name)
    store_db.upgrade(url)
    now = datetime.now(UTC).replace(tzinfo=None)
    columns = "external_id, email, first_name, attributes, push_consent, created_at, updated_at"
    with psycopg.connect(libpq(url)) as conn:
        with conn.cursor() as cursor, cursor.copy(f"COPY profile ({columns}) FROM STDIN") as copy:
            for i in range(rows):
                copy.write_row((crm_id(i), f"user{i}@example.com", FIRST_NAMES[i % 8], "{}", "u", now, now))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE profile")


def child_floor_postgresql(args: argparse.Namespace) -> dict[str, Any]:
    """The floor loop on a copy of the scale's database (see the module's docstring)."""
    import csv

    import psycopg
    from azure.storage.blob import ContainerClient

    from bench.segments_phases import _Chunks, cpu_seconds

    client = ContainerClient.from_connection_string(args.connection_string, CONTAINER)
    db = psycopg.connect(libpq(args.database_url))
    cpu = cpu_seconds()
    started = time.perf_counter()
    chunks = client.download_blob(args.blob).chunks()
    text = io.TextIOWrapper(io.BufferedReader(_Chunks(chunks)), encoding="utf-8", newline="")
    reader = csv.reader(text)
    header = next(reader)
    identity, status = header.index("crmId"), header.index("segmentMembership.status")
    db.execute("CREATE TEMPORARY TABLE stage (identity TEXT NOT NULL, status TEXT NOT NULL)")
    rows = 0
    with db.cursor() as cursor, cursor.copy("COPY stage (identity, status) FROM STDIN") as copy:
        for row in reader:
            copy.write_row((row[identity], row[status]))
            rows += 1
    db.commit()
    staged = time.perf_counter()
    now = datetime.now(UTC).replace(tzinfo=None)
    audience = db.execute(
        "INSERT INTO audience (name, segment_id, created_at, updated_at) VALUES ('floor', 'floor', %s, %s) "
        "RETURNING id",
        (now, now),
    ).fetchone()[0]  # type: ignore[index]
    applied = db.execute(
        "INSERT INTO audience_member (audience_id, profile_id, status, entered_at, updated_at) "
        "SELECT %s, p.id, s.status, %s, %s FROM stage s JOIN profile p ON p.external_id = s.identity ORDER BY p.id",
        (audience, now, now),
    ).rowcount
    db.commit()
    elapsed = time.perf_counter() - started
    db.close()
    return {
        "rows": rows,
        "applied": applied,
        "elapsed": elapsed,
        "apply": elapsed - (staged - started),
        "cpu": cpu_seconds() - cpu,
    }

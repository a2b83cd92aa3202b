"""The staging area of one segment export, and the set-based statements that apply it to
``audience_member``.

Three temporary tables on the importer's own connection hold an export on its way in:

- ``segment_stage``: one ``(identity, ref)`` row per staged row (``ref`` packs part, line, segment
  and status: :func:`ref`);
- ``segment_match``: the same rows resolved to profile ids, in profile id order;
- ``segment_reject``: rows refused, with their reason.

Temporary tables are private to the connection and, on SQLite, live in a separate temp database:
filling and resolving them takes no lock on the store, so a long export never makes the gateway's
writers wait. Only :meth:`Staging.upsert_members` and the statements after it write the store, in
the one transaction that also writes the ledger: the whole export takes effect, or none of it.

Order matters more than anything for speed: B-tree inserts into ``audience_member`` in profile id
order touch each page once, while the export's own order (unrelated to profile ids) would touch a
random page per row. Rows are staged through the driver directly (``executemany`` on SQLite,
``COPY`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, text

from store.db import placeholder
from store.types import UTCDateTime

#: Segments one export may have (the segment number takes 14 bits of a staged ref).
MAX_SEGMENTS = 1 << 14
#: Parts one export may have (15 bits) and lines one part may have (32 bits).
MAX_PARTS = 1 << 15
_LINE_MASK = (1 << 32) - 1

StagedRow = tuple[str, int]  # identity, ref
StagedReject = tuple[int, int, str | None, str, int | None]  # part, line, identity, reason, kind (or None)


def kind(segment: int, status: int) -> int:
    """A segment number and a status code as one number (the low 16 bits of a ref)."""
    return segment << 2 | status


def ref(part: int, line: int, segment: int, status: int) -> int:
    """Where a staged row comes from and what it says, in one 63-bit integer: part (15 bits), line
    (32 bits), segment number (14 bits), status code (2 bits). Staging one integer instead of four
    saves a quarter of the staging time."""
    return (part << 48) | ((line & _LINE_MASK) << 16) | (segment << 2) | status


def unref(value: int) -> tuple[int, int, int, int]:
    """``(part, line, segment, status)`` of a ref."""
    return value >> 48, (value >> 16) & _LINE_MASK, (value >> 2) & (MAX_SEGMENTS - 1), value & 3


STAGE = "segment_stage"
MATCH = "segment_match"
REJECTS = "segment_reject"
# Statement templates, filled by Staging._sql ({stage}, {match}, {rejects}, {lookup}, {fence},
# {on_conflict}). In a ref, ref % 65536 is the kind (segment << 2 | status), ref % 4 the status,
# ref / 2**48 the part and (ref / 65536) % 2**32 the line (:func:`ref`).
_CREATE = (
    "CREATE TEMPORARY TABLE {stage} (identity TEXT NOT NULL, ref BIGINT NOT NULL)",
    "CREATE TEMPORARY TABLE {match} (pid BIGINT NOT NULL, ref BIGINT NOT NULL, identity TEXT)",
    "CREATE TEMPORARY TABLE {rejects} (part INTEGER NOT NULL, line BIGINT NOT NULL, identity TEXT, "
    "reason TEXT NOT NULL, kind INTEGER)",
)
_DROP = ("DROP TABLE IF EXISTS {stage}", "DROP TABLE IF EXISTS {match}", "DROP TABLE IF EXISTS {rejects}")
_INSERT_ROWS = "INSERT INTO {stage} (identity, ref) VALUES (?, ?)"
_INSERT_REJECTS = "INSERT INTO {rejects} (part, line, identity, reason, kind) VALUES (?, ?, ?, ?, ?)"
_COPY_ROWS = "COPY {stage} (identity, ref) FROM STDIN"
_COPY_REJECTS = "COPY {rejects} (part, line, identity, reason, kind) FROM STDIN"
# One look-up per staged row ({lookup}): pid is the profile id when exactly one profile has the
# identity, 0 when none has, -n when n profiles share it (an email). The fence ({fence}: OFFSET 0)
# keeps the look-up from being evaluated twice. Sorted by profile id, the rows are then written to
# the store in its own order; the identity is kept for the rows that will be rejected.
_RESOLVE = (
    "INSERT INTO {match} (pid, ref, identity) "
    "SELECT pid, ref, CASE WHEN pid > 0 THEN NULL ELSE identity END FROM ("
    "SELECT s.ref, s.identity, {lookup} AS pid FROM {stage} s {fence}) resolved ORDER BY pid, ref"
)
# external_id is unique (uq_profile_external_id): one index probe, no aggregate. Counting and
# taking the max of at most one row made the look-up of 1,000,000 rows 0.1-0.5 s slower.
_LOOKUPS = {
    "external_id": "coalesce((SELECT p.id FROM profile p WHERE p.external_id = s.identity), 0)",
    "email": "(SELECT CASE WHEN count(*) = 1 THEN max(p.id) ELSE -count(*) END FROM profile p "
    "WHERE p.email = s.identity)",
}
#: The profile columns an identity may be matched on (PUSHGATE_RECONCILIATION_FIELD).
MATCH_FIELDS = tuple(_LOOKUPS)
_REJECT_UNMATCHED = (
    "INSERT INTO {rejects} (part, line, identity, reason, kind) "
    "SELECT ref / 281474976710656, (ref / 65536) % 4294967296, identity, "
    "CASE WHEN pid = 0 THEN :missing || identity "
    "ELSE 'ambiguous: ' || CAST(-pid AS VARCHAR(12)) || :several || identity END, ref % 65536 "
    "FROM {match} WHERE pid <= 0"
)
_UNMATCHED_COUNTS = "SELECT part, kind, count(*) FROM {rejects} WHERE kind IS NOT NULL GROUP BY part, kind"
# The join with profile drops a profile deleted since the export was resolved.
# PostgreSQL: one row per profile (ON CONFLICT may not touch a row twice); the last one named wins.
_UPSERT_MEMBERS_PG = (
    "INSERT INTO audience_member (audience_id, profile_id, status, entered_at, updated_at, last_export) "
    "SELECT DISTINCT ON (m.pid) :audience, m.pid, CASE m.ref % 4 WHEN 1 THEN 'realized' ELSE 'existing' END, "
    ":now, :now, :key FROM {match} m JOIN profile p ON p.id = m.pid "
    "WHERE m.pid > 0 AND m.ref % 65536 IN (:realized, :existing) ORDER BY m.pid, m.ref DESC {on_conflict}"
)
# SQLite: rows come in profile id order (then ref), a later row for a profile updating the earlier.
_UPSERT_MEMBERS_SQLITE = (
    "INSERT INTO audience_member (audience_id, profile_id, status, entered_at, updated_at, last_export) "
    "SELECT :audience, m.pid, CASE m.ref % 4 WHEN 1 THEN 'realized' ELSE 'existing' END, "
    ":now, :now, :key FROM {match} m CROSS JOIN profile p WHERE p.id = m.pid "
    "AND m.pid > 0 AND m.ref % 65536 IN (:realized, :existing) {on_conflict}"
)
# A member who comes back after an exit entered again.
_ON_CONFLICT = (
    "ON CONFLICT (audience_id, profile_id) DO UPDATE SET status = excluded.status, "
    "entered_at = CASE WHEN audience_member.status = 'exited' THEN excluded.entered_at "
    "ELSE audience_member.entered_at END, updated_at = excluded.updated_at, last_export = excluded.last_export"
)
_EXIT_MEMBERS = (
    "UPDATE audience_member SET status = 'exited', updated_at = :now, last_export = :key "
    "WHERE audience_id = :audience AND status <> 'exited' "
    "AND profile_id IN (SELECT m.pid FROM {match} m WHERE m.pid > 0 AND m.ref % 65536 = :exited)"
)
_EXIT_UNNAMED = (
    "UPDATE audience_member SET status = 'exited', updated_at = :now "
    "WHERE audience_id = :audience AND status <> 'exited' AND (last_export IS NULL OR last_export <> :key)"
)
_REJECTS = "SELECT part, line, min(identity), min(reason) FROM {rejects} GROUP BY part, line ORDER BY part, line"


class Staging:
    """The temporary tables of one export on one connection, matching on ``match_field``."""

    def __init__(self, conn: Connection, match_field: str) -> None:
        if match_field not in MATCH_FIELDS:
            raise ValueError(f"cannot match identities on {match_field!r}")
        self.conn = conn
        self.field = match_field
        self.postgresql = conn.dialect.name == "postgresql"
        marker = placeholder(conn.dialect)
        self.staged = 0
        self._insert_rows = self._sql(_INSERT_ROWS).replace("?", marker)
        self._insert_rejects = self._sql(_INSERT_REJECTS).replace("?", marker)

    def _sql(self, template: str) -> str:
        """A statement template filled in. Only the fixed table names and the look-up of a
        :data:`MATCH_FIELDS` column ever enter SQL text; values are always bound."""
        return (
            template.replace("{on_conflict}", _ON_CONFLICT)
            .replace("{lookup}", _LOOKUPS[self.field])
            .replace("{fence}", "OFFSET 0" if self.postgresql else "LIMIT -1 OFFSET 0")
            .replace("{stage}", STAGE)
            .replace("{match}", MATCH)
            .replace("{rejects}", REJECTS)
        )

    def _run(self, template: str, params: dict[str, Any] | None = None) -> int:
        statement = text(self._sql(template))
        if params and "now" in params:
            statement = statement.bindparams(bindparam("now", type_=UTCDateTime()))
        result = self.conn.execute(statement, params or {})
        return int(getattr(result, "rowcount", 0) or 0)

    # -- filling ---------------------------------------------------------------------------------

    def create(self) -> None:
        self.drop()
        for statement in _CREATE:
            self.conn.exec_driver_sql(self._sql(statement))

    def drop(self) -> None:
        for statement in _DROP:
            self.conn.exec_driver_sql(self._sql(statement))

    def add_rows(self, rows: list[StagedRow]) -> None:
        self._copy(_COPY_ROWS, self._insert_rows, rows)
        self.staged += len(rows)

    def add_rejects(self, rejects: list[StagedReject]) -> None:
        self._copy(_COPY_REJECTS, self._insert_rejects, rejects)

    def _copy(self, copy_template: str, insert: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.postgresql:
            driver: Any = self.conn.connection.driver_connection
            with driver.cursor() as cursor, cursor.copy(self._sql(copy_template)) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            self.conn.exec_driver_sql(insert, list(rows))

    # -- resolving (still outside the store's write transaction) ------------------------------------

    def resolve(self) -> int:
        """Match staged rows to profiles (into ``segment_match``, in profile id order), reject the rows
        that match no profile or several; returns how many rows matched."""
        self._run(_RESOLVE)
        refused = self._run(
            _REJECT_UNMATCHED, {"missing": f"no profile with {self.field} ", "several": f" profiles with {self.field} "}
        )
        self.conn.exec_driver_sql(self._sql("DELETE FROM {stage}"))
        return self.staged - refused

    # -- applying (inside the export's transaction) -----------------------------------------------

    @contextmanager
    def store_transaction(self) -> Iterator[None]:
        """The export's one write transaction. On SQLite the write lock is taken at once (``BEGIN
        IMMEDIATE``: a read snapshot upgraded to a write later fails at once when another connection
        wrote meanwhile), and foreign key checks are off while it lasts: every member row written
        references a profile joined in the same transaction and an audience written in it, and the
        checks would cost a third of the time. They are back on before the connection is released
        (or the connection is discarded)."""
        if self.postgresql:
            with self.conn.begin():
                yield
            return
        driver: Any = self.conn.connection.driver_connection
        driver.execute("PRAGMA foreign_keys=OFF")
        try:
            with self.conn.begin():
                if not driver.in_transaction:
                    self.conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield
        finally:
            driver.execute("PRAGMA foreign_keys=ON")
            if driver.execute("PRAGMA foreign_keys").fetchone()[0] != 1:
                self.conn.invalidate()

    def unmatched_counts(self) -> dict[tuple[int, int, int], int]:
        """(part, segment number, status code) -> staged rows refused for their identity."""
        rows = self.conn.execute(text(self._sql(_UNMATCHED_COUNTS)))
        return {(int(part), int(k) >> 2, int(k) & 3): int(n) for part, k, n in rows}

    def upsert_members(self, audience_id: int, segment: int, now: datetime, key: str) -> int:
        """Realized and existing rows of one segment: members (again) of its audience."""
        template = _UPSERT_MEMBERS_PG if self.postgresql else _UPSERT_MEMBERS_SQLITE
        kinds = {"realized": kind(segment, 1), "existing": kind(segment, 2)}
        return self._run(template, {"audience": audience_id, **kinds, "now": now, "key": key})

    def exit_members(self, audience_id: int, segment: int, now: datetime, key: str) -> int:
        """Exited rows of one segment: their members leave the audience."""
        params = {"audience": audience_id, "exited": kind(segment, 3), "now": now, "key": key}
        return self._run(_EXIT_MEMBERS, params)

    def exit_unnamed(self, audience_id: int, now: datetime, key: str) -> int:
        """Full exports: members the export ``key`` did not name leave the audience."""
        return self._run(_EXIT_UNNAMED, {"audience": audience_id, "now": now, "key": key})

    def rejects(self) -> Iterator[tuple[int, int, str | None, str]]:
        """Every refused row once, ``(part, line, identity, reason)`` in file order, streamed."""
        result = self.conn.execute(
            text(self._sql(_REJECTS)), execution_options={"stream_results": True, "yield_per": 1000}
        )
        for part, line, identity, reason in result:
            yield int(part), int(line), identity, str(reason)

"""Commit-ordered timestamps: the clock for rows the Platform export reads in time order.

The export (:mod:`store.queries.export`) reads broadLog, trackingLog, address (quarantine) and
profile rows in the order of a timestamp and remembers the last one the Platform took. That is
only safe if no row can become visible later with a timestamp at or before one already read: a
transaction that stamped a row and has not committed yet must never be overtaken.

Writers take those timestamps with :func:`stamp` (or through the models' :func:`ordered_now`
default), and the export reads up to :func:`horizon`:

- **SQLite** serialises writers. :func:`stamp` first makes its transaction hold the write lock
  (``BEGIN IMMEDIATE`` when it does not hold it yet), then reads the clock. A transaction that
  commits later took the lock later, so its timestamps are later than those of every row already
  committed: any row the export can read is older than any row still to come, and the horizon is
  simply now. Nothing waits.
- **PostgreSQL** lets writers run side by side. :func:`stamp` makes sure its transaction has begun
  before it reads the clock, so each row's timestamp is no older than its transaction's start; the
  horizon is the start of the oldest transaction still open in the database (``pg_stat_activity``,
  which the export's database role must be able to read for the other sessions' roles: the same
  role, or ``pg_read_all_stats``). Rows stamped after it wait until that transaction ends. The
  settle margin (``PUSHGATE_SYNC_EXPORT_SETTLE_SECONDS``) covers clock differences between the
  hosts that stamp rows and the database server.

The rule for code that writes one of those columns: take the value from :func:`stamp` inside the
transaction that writes it (the ORM defaults do it themselves), never from a clock read earlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import ExecutionContext
from sqlalchemy.orm import Session

from store.types import iso_z, utcnow

#: Used on PostgreSQL when some sessions' transactions are hidden from us (another role without
#: ``pg_read_all_stats``): then the oldest open transaction is unknown, and a fixed delay is all
#: that is left.
HIDDEN_SESSIONS_DELAY = timedelta(minutes=15)

_PG_OLDEST = (
    "SELECT clock_timestamp(), min(xact_start), count(*) FILTER (WHERE state IS NULL) "
    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND backend_type = 'client backend'"
)


def _hold(connection: Connection) -> None:
    """Make the connection's transaction hold what :func:`stamp` needs before the clock is read."""
    raw: Any = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        if not raw.in_transaction:  # pysqlite opens no transaction for reads: take the lock now
            raw.execute("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        from psycopg.pq import TransactionStatus

        if raw.info.transaction_status == TransactionStatus.IDLE:  # psycopg begins on first use
            raw.execute("SELECT 1")


def stamp(session_or_connection: Session | Connection) -> datetime:
    """Now, for a row this transaction writes and the export reads in time order (see above)."""
    connection = (
        session_or_connection.connection() if isinstance(session_or_connection, Session) else session_or_connection
    )
    _hold(connection)
    return utcnow()


def ordered_now(context: ExecutionContext) -> datetime:
    """Column default (``default=ordered_now, onupdate=ordered_now``): :func:`stamp` for the row
    an INSERT or UPDATE is writing."""
    connection = context.root_connection
    _hold(connection)
    return utcnow()


@dataclass(frozen=True)
class Horizon:
    """How far the export may read: rows stamped before ``until``. ``held_by`` says what holds it
    back from now (None when nothing does); ``delay`` is set when that is a fixed delay, so a row
    stamped at T may go at T + delay."""

    until: datetime
    held_by: str | None = None
    delay: timedelta | None = None


#: The settle margin when ``PUSHGATE_SYNC_EXPORT_SETTLE_SECONDS`` is empty: none where one clock
#: stamps everything (SQLite: one host), a few seconds of clock difference between hosts otherwise.
DEFAULT_SETTLE = {"sqlite": timedelta(0), "postgresql": timedelta(seconds=5)}


def horizon(connection: Connection, settle: timedelta | None = None) -> Horizon:
    """The time before which every row that will ever be visible is visible now, less ``settle``
    (None: :data:`DEFAULT_SETTLE` of the database)."""
    if settle is None:
        settle = DEFAULT_SETTLE.get(connection.dialect.name, DEFAULT_SETTLE["postgresql"])
    if connection.dialect.name != "postgresql":
        return _fixed(utcnow(), settle, f"the settle window of {_seconds(settle)}")
    now, oldest, hidden = connection.exec_driver_sql(_PG_OLDEST).one()
    if hidden:
        delay = max(settle, HIDDEN_SESSIONS_DELAY)
        held_by = f"{hidden} database sessions of roles this one cannot see (grant it pg_read_all_stats)"
        return _fixed(now, delay, held_by)
    if oldest is not None and oldest < now:
        return Horizon(oldest - settle, f"a transaction open since {iso_z(oldest)}")
    return _fixed(now, settle, f"the settle window of {_seconds(settle)}")


def _fixed(now: datetime, delay: timedelta, held_by: str) -> Horizon:
    return Horizon(now - delay, held_by, delay) if delay else Horizon(now)


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():g} s"

"""INSERT ... ON CONFLICT DO UPDATE for SQLite and PostgreSQL, returning the row's key.

Registration endpoints are hit concurrently by many devices, and SDKs re-send the same token;
an atomic upsert keyed by a unique constraint is the only race-free way to make them idempotent
without a read-then-write round trip. Building the statement (``excluded`` proxies for every
column) costs more than executing it, so each shape is built once and cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from store.models import Base


@lru_cache(maxsize=256)
def _statement(
    dialect: str,
    table: Table,
    columns: tuple[str, ...],
    conflict: tuple[str, ...],
    update: tuple[str, ...],
    computed: tuple[tuple[str, Any], ...],
) -> Executable:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    if computed:
        stmt = stmt.values(dict(computed))
    stmt = stmt.on_conflict_do_update(
        index_elements=list(conflict), set_={name: stmt.excluded[name] for name in update}
    )
    key = next(iter(table.primary_key.columns))
    if dialect == "postgresql":
        return stmt.returning(key, literal_column("(xmax = 0)"))
    return stmt.returning(key, table.c.created_at)


def upsert(
    session: Session,
    model: type[Base],
    values: Mapping[str, Any],
    *,
    conflict: Iterable[str],
    update: Iterable[str],
    computed: Mapping[str, Any] | None = None,
) -> tuple[Any, bool]:
    """Insert ``values`` or, when ``conflict`` columns match a row, update the ``update`` columns.

    The table needs a ``created_at`` column set by ``values``. Returns ``(primary key, inserted)``.
    ``inserted`` is told apart from an update through PostgreSQL's ``xmax = 0`` and, on SQLite,
    by comparing ``created_at`` with the value we tried to insert. ``computed`` maps columns to SQL
    expressions (long-lived objects, as they key the statement cache) whose bind parameters are
    given in ``values`` under names that are not column names.
    """
    table = model.__table__
    assert isinstance(table, Table)
    dialect = session.get_bind().dialect.name
    columns = tuple(name for name in values if name in table.c)
    stmt = _statement(dialect, table, columns, tuple(conflict), tuple(update), tuple((computed or {}).items()))
    row = session.connection().execute(stmt, dict(values)).one()
    if dialect == "postgresql":
        return row[0], bool(row[1])
    return row[0], row[1] == values.get("created_at")


def upsert_many(
    session: Session,
    model: type[Base],
    rows: Sequence[Mapping[str, Any]],
    *,
    conflict: Iterable[str],
    update: Iterable[str],
    keep_when_null: Iterable[str] = (),
) -> None:
    """Insert ``rows`` (all with the same keys) in one executemany, updating the ``update``
    columns of rows whose ``conflict`` columns match. Columns in ``keep_when_null`` keep their
    stored value when the new one is NULL. No two rows may share their ``conflict`` values
    (PostgreSQL refuses to update a row twice in one statement)."""
    if not rows:
        return
    table = model.__table__
    assert isinstance(table, Table)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    keep = set(keep_when_null)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(conflict),
        set_={
            name: func.coalesce(stmt.excluded[name], table.c[name]) if name in keep else stmt.excluded[name]
            for name in update
        },
    )
    session.execute(stmt, [dict(row) for row in rows])

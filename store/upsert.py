"""INSERT ... ON CONFLICT DO UPDATE for SQLite and PostgreSQL, returning the row's id.

Registration endpoints are hit concurrently by many devices, and SDKs re-send the same token;
an atomic upsert keyed by a unique constraint is the only race-free way to make them idempotent
without a read-then-write round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Table, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.models import Base


def upsert(
    session: Session,
    model: type[Base],
    values: Mapping[str, Any],
    *,
    conflict: Iterable[str],
    update: Iterable[str],
) -> tuple[Any, bool]:
    """Insert ``values`` or, when ``conflict`` columns match a row, update the ``update`` columns.

    The table needs a ``created_at`` column set by ``values``. Returns ``(primary key, inserted)``.
    ``inserted`` is told apart from an update through PostgreSQL's
    ``xmax = 0`` and, on SQLite, by comparing ``created_at`` with the value we tried to insert.
    """
    table = model.__table__
    assert isinstance(table, Table)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(conflict),
        set_={name: stmt.excluded[name] for name in update},
    )
    key = next(iter(table.primary_key.columns))
    if dialect == "postgresql":
        row = session.execute(stmt.returning(key, literal_column("(xmax = 0)"))).one()
        return row[0], bool(row[1])
    row = session.execute(stmt.returning(key, table.c.created_at)).one()
    return row[0], row[1] == values.get("created_at")

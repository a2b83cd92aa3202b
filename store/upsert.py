"""INSERT ... ON CONFLICT DO UPDATE for SQLite and PostgreSQL, returning the row's key.

Registration endpoints are hit concurrently by many devices, and SDKs re-send the same token;
an atomic upsert keyed by a unique constraint is the only race-free way to make them idempotent
without a read-then-write round trip. Building the statement (``excluded`` proxies for every
column) costs more than executing it, so each shape is built once and cached; so is its SQL,
rendered for the dialect, which :func:`upsert` then sends straight to the driver with the column
types' own bind processors applied (the way ``store.queries.broadlog`` sends its hot statements):
through SQLAlchemy's per-execution cache-key walk, parameter processing and result set-up the
registration's one statement cost more Python than the rest of its store work together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, Table, func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InvalidRequestError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

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


_REQUIRED = object()  # a parameter that ``values`` must give


@dataclass(frozen=True)
class _Driver:
    """One statement shape rendered for one dialect: the SQL, and for each of its parameters, in
    the driver's order, its name, its type's bind processor and the value it holds when
    ``values`` does not give it (the statement's own literals, such as a ``LIMIT 1``)."""

    sql: str
    positional: bool
    params: tuple[tuple[str, Callable[[Any], Any] | None, Any], ...]
    created_at: int  # the index of created_at in ``params``

    def parameters(self, values: Mapping[str, Any]) -> tuple[tuple[Any, ...] | dict[str, Any], Any]:
        """The driver's parameters for ``values`` (a tuple for a positional paramstyle, else a
        dict) and the value bound for created_at."""
        processed = []
        for name, process, default in self.params:
            if name in values:
                value = values[name]
            elif default is _REQUIRED:  # as SQLAlchemy itself refuses it
                missing = InvalidRequestError(f"A value is required for bind parameter {name!r}")
                raise StatementError(str(missing), self.sql, dict(values), missing)
            else:
                value = default
            processed.append(value if process is None else process(value))
        created_at = processed[self.created_at]
        if self.positional:
            return tuple(processed), created_at
        named = {name: value for (name, _process, _default), value in zip(self.params, processed, strict=True)}
        return named, created_at


@lru_cache(maxsize=256)
def _driver(dialect: Dialect, table: Table, stmt: Executable, columns: tuple[str, ...]) -> _Driver | None:
    """``stmt`` rendered once for ``dialect``; None when SQLAlchemy must take part in each
    execution: parameters rendered or renamed per execution, column defaults computed in Python
    for columns ``values`` leaves out, or a returned key that needs converting back."""
    assert isinstance(stmt, ClauseElement)
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
    if (
        not isinstance(compiled, SQLCompiler)
        or compiled.escaped_bind_names
        or compiled.post_compile_params
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or "created_at" not in columns
    ):
        return None
    key = next(iter(table.primary_key.columns))
    if key.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
        return None
    names = compiled.positiontup if compiled.positional else list(compiled.bind_names.values())
    if names is None or len(set(names)) != len(names) or "created_at" not in names:
        return None
    defaults = compiled.construct_params(_check=False)
    params = []
    for name in names:
        bind = compiled.binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        params.append((name, process, _REQUIRED if bind.required else defaults.get(name)))
    return _Driver(compiled.string, compiled.positional, tuple(params), list(names).index("created_at"))


def upsert(
    session: Session | Connection,
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
    given in ``values`` under names that are not column names. It runs in ``session``'s
    transaction (an ORM session's connection, or a Core connection), which the caller commits.
    """
    table = model.__table__
    assert isinstance(table, Table)
    connection = session.connection() if isinstance(session, Session) else session
    dialect = connection.dialect
    columns = tuple(name for name in values if name in table.c)
    stmt = _statement(dialect.name, table, columns, tuple(conflict), tuple(update), tuple((computed or {}).items()))
    driver = _driver(dialect, table, stmt, columns)
    if driver is None:
        row = connection.execute(stmt, dict(values)).one()
        created_at = values.get("created_at")
    else:
        # The driver's raw values come back: created_at as it was stored, so it is compared with
        # the value bound for it rather than with ``values``' datetime.
        parameters, created_at = driver.parameters(values)
        row = connection.exec_driver_sql(driver.sql, parameters).one()
    if dialect.name == "postgresql":
        return row[0], bool(row[1])
    return row[0], row[1] == created_at


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

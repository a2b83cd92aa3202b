"""Personalisation tables: the ``tables`` that message templates read (``tables.offers[key].title``).

A table comes from a ``data_<name>.csv`` file of the sFTP sync (:mod:`sync.profiles`): its first
column is the key, the others are the fields of each row. Importing a file replaces the whole
table in the file's transaction (:func:`replace_table`, then :func:`put_rows`), so templates see
either the old table or the new one, never a mix.

Templates read tables through :class:`LookupTables`, a read-only mapping that looks rows up only
when a template asks for them, through its own short sessions (so the delivery engine can use it
from its event-loop thread, whatever session another thread holds). One instance serves one
delivery (or one preview) and remembers the rows it read, found or not, in a bounded LRU cache:
every message of a delivery sees the same row for the same key, and memory stays bounded however
many keys a delivery reads. Unknown tables, rows and fields read as missing, which templates
render as empty.

A row read is one query. For a batch of messages whose templates each read another key (a table
keyed by the profile's id, say), the engine renders the batch inside :meth:`LookupTables.deferring`:
a row not cached yet reads as missing and is noted instead of queried, :meth:`LookupTables.load_pending`
then reads every noted row in a few ``IN`` queries, and the messages that missed a row are
rendered again, now from the cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import MappingProxyType
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from store.models import LookupRow, LookupTable
from store.types import utcnow
from store.upsert import upsert_many

#: Rows (and table names) one :class:`LookupTables` remembers.
CACHE_ROWS = 10_000
KEY_MAX = 255
#: Keys per query of :meth:`LookupTables.load_pending` (under every driver's parameter limit).
LOAD_CHUNK = 500

SessionSource = Callable[[], AbstractContextManager[Session]]

_ROW = select(LookupRow.fields).where(LookupRow.table_id == bindparam("table_id"), LookupRow.key == bindparam("key"))
_ROWS = select(LookupRow.key, LookupRow.fields).where(
    LookupRow.table_id == bindparam("table_id"), LookupRow.key.in_(bindparam("keys", expanding=True))
)
_TABLE = select(LookupTable.id).where(LookupTable.name == bindparam("name"))
_MISSING = object()


class LookupTables(Mapping[str, "LookupTableView"]):
    """``tables`` for templates: table name -> key -> row fields, read lazily and cached.

    ``sessions`` opens a short session per lookup: a ``sessionmaker`` works as it is; for a
    session already open in this thread use :meth:`in_session`. Thread-safe; deferring is per
    thread.
    """

    def __init__(self, sessions: SessionSource, *, max_rows: int = CACHE_ROWS) -> None:
        self._sessions = sessions
        self._max_rows = max_rows
        self._cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._names: tuple[str, ...] | None = None
        self._pending: dict[int, set[str]] = {}  # table id -> keys noted while deferring
        self._local = threading.local()  # .deferring, .deferred (this thread's)

    @classmethod
    def in_session(cls, session: Session, *, max_rows: int = CACHE_ROWS) -> LookupTables:
        """Tables read through ``session`` (a request's session, for a preview)."""
        return cls(lambda: nullcontext(session), max_rows=max_rows)

    # -- the cache -------------------------------------------------------------------------------

    def _peek(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            value = self._cache.get(key, _MISSING)
            if value is not _MISSING:
                self._cache.move_to_end(key)
            return value

    def _keep(self, entries: Iterable[tuple[tuple[Any, ...], Any]]) -> None:
        with self._lock:
            for key, value in entries:
                self._cache[key] = value
                self._cache.move_to_end(key)
            while len(self._cache) > self._max_rows:
                self._cache.popitem(last=False)

    def _cached(self, key: tuple[Any, ...], load: Callable[[Session], Any]) -> Any:
        value = self._peek(key)
        if value is not _MISSING:
            return value
        with self._sessions() as session:  # outside the lock: a slow query must not block hits
            value = load(session)
        self._keep([(key, value)])
        return value

    def _row(self, table_id: int, key: str) -> Mapping[str, Any] | None:
        if getattr(self._local, "deferring", False):
            found = self._peek(("row", table_id, key))
            if found is not _MISSING:
                row: Mapping[str, Any] | None = found
                return row
            with self._lock:
                self._pending.setdefault(table_id, set()).add(key)
            self._local.deferred = self.deferred + 1
            return None

        def load(session: Session) -> Mapping[str, Any] | None:
            return _frozen(session.execute(_ROW, {"table_id": table_id, "key": key}).scalar())

        row = self._cached(("row", table_id, key), load)
        return row

    # -- reading a batch's rows together ---------------------------------------------------------

    @contextmanager
    def deferring(self) -> Iterator[None]:
        """While this lasts (in this thread), a row not cached reads as missing and is noted for
        :meth:`load_pending` instead of being queried; :attr:`deferred` counts such reads."""
        self._local.deferring = True
        try:
            yield
        finally:
            self._local.deferring = False

    @property
    def deferred(self) -> int:
        """How many row reads this thread has deferred so far (compare before and after a render)."""
        count: int = getattr(self._local, "deferred", 0)
        return count

    def load_pending(self) -> int:
        """Read every row noted while deferring (found or not) into the cache, :data:`LOAD_CHUNK`
        keys a query, from any thread; returns how many keys were read."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        loaded = 0
        with self._sessions() as session:
            for table_id, keys in pending.items():
                ordered = sorted(keys)
                for start in range(0, len(ordered), LOAD_CHUNK):
                    chunk = ordered[start : start + LOAD_CHUNK]
                    result = session.execute(_ROWS, {"table_id": table_id, "keys": chunk})
                    found: dict[str, Any] = {key: fields for key, fields in result}
                    self._keep((("row", table_id, key), _frozen(found.get(key))) for key in chunk)
                    loaded += len(chunk)
        return loaded

    def _count(self, table_id: int) -> int:
        def load(session: Session) -> int:
            return int(session.scalar(select(func.count()).where(LookupRow.table_id == table_id)) or 0)

        count: int = self._cached(("count", table_id), load)
        return count

    # -- the mapping -----------------------------------------------------------------------------

    def __getitem__(self, name: str) -> LookupTableView:
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            raise KeyError(name)

        def load(session: Session) -> int | None:
            table_id = session.execute(_TABLE, {"name": name}).scalar()
            return int(table_id) if table_id is not None else None

        table_id: int | None = self._cached(("table", name), load)
        if table_id is None:
            raise KeyError(name)
        return LookupTableView(self, table_id)

    def __iter__(self) -> Iterator[str]:
        if self._names is None:
            with self._sessions() as session:
                self._names = tuple(session.scalars(select(LookupTable.name).order_by(LookupTable.name)))
        return iter(self._names)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _frozen(fields: Any) -> Mapping[str, Any] | None:
    """A stored row's fields as a read-only mapping (None: no such row)."""
    return MappingProxyType(dict(fields)) if isinstance(fields, dict) else None


class LookupTableView(Mapping[str, Mapping[str, Any]]):
    """One table: key -> read-only row fields. A key may be a string or an integer; a table is
    read by key only (iterating it would read it whole, so it is refused)."""

    def __init__(self, tables: LookupTables, table_id: int) -> None:
        self._tables = tables
        self._table_id = table_id

    def __getitem__(self, key: Any) -> Mapping[str, Any]:
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str) or not 0 < len(key) <= KEY_MAX:
            raise KeyError(key)
        row = self._tables._row(self._table_id, key)
        if row is None:
            raise KeyError(key)
        return row

    def __iter__(self) -> Iterator[str]:
        raise TypeError("a personalisation table is read by key (tables.NAME[key]), not listed")

    def __len__(self) -> int:
        return self._tables._count(self._table_id)


# -- importing ------------------------------------------------------------------------------------


def replace_table(session: Session, name: str, key_column: str, columns: Sequence[str]) -> int:
    """Create table ``name`` or empty it, with its new key column and field columns; returns its
    id. Rows follow with :func:`put_rows`, in the same transaction."""
    table = session.scalar(select(LookupTable).where(LookupTable.name == name))
    if table is None:
        table = LookupTable(name=name, key_column=key_column, columns=list(columns))
        session.add(table)
        session.flush()
    else:
        table.key_column, table.columns, table.updated_at = key_column, list(columns), utcnow()
        session.execute(delete(LookupRow).where(LookupRow.table_id == table.id))
        session.flush()
    return table.id


def put_rows(session: Session, table_id: int, rows: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Write ``(key, fields)`` rows into the table; a key written again replaces its row (the
    later one wins). Returns how many distinct keys were written by this call."""
    latest = {key: fields for key, fields in rows}
    upsert_many(
        session,
        LookupRow,
        [{"table_id": table_id, "key": key, "fields": fields} for key, fields in latest.items()],
        conflict=("table_id", "key"),
        update=("fields",),
    )
    return len(latest)

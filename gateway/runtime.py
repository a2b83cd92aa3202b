"""What a running gateway holds: settings, the database, the credential box.

One :class:`Runtime` is built by the app factory and kept in ``app.extensions["pushgate"]``; the
CLI, the views and (later) the worker reach it through :func:`runtime`. A request gets one
session (:func:`db`), closed at teardown; views commit, services never do. A view whose whole
write is one Core statement (a registration) may use :func:`transaction` instead: the ORM
session's set-up, commit and close bookkeeping cost more CPU there than the statement itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, g
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.secrets import SecretBox


class TTLCache:
    """A small thread-safe map whose entries expire; used for lookups on the registration hot path."""

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._data: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        entry = self._data.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: Any, value: Any) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._data) >= self.max_entries:
                self._data.clear()
            self._data[key] = (time.monotonic() + self.seconds, value)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


#: What the tracking signatures' key is derived for (core.secrets.SecretBox.derive).
TRACKING_PURPOSE = "tracking"


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    box: SecretBox
    #: integration key -> domain.subscriptions.KeyOwner; cleared whenever this process changes an app
    integration_keys: TTLCache = field(default_factory=lambda: TTLCache(0))
    #: One :func:`transaction` at a time in this process on SQLite (see there).
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def tracking_key(self) -> bytes:
        """The key of the tracking signatures pushes carry (domain.tracking.signature)."""
        return self.box.derive(TRACKING_PURPOSE)


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["pushgate"]
    return rt


def db() -> Session:
    """The request's session, opened on first use."""
    session: Session | None = g.get("_pushgate_session")
    if session is None:
        session = runtime().sessions()
        g._pushgate_session = session
    return session


@contextmanager
def transaction() -> Iterator[Connection]:
    """A connection of its own in one transaction: committed when the block ends, rolled back
    (and the exception passed on) when it raises. Independent of the request's :func:`db`; not
    to be nested in one thread.

    On SQLite, which lets one writer in at a time, this process's transactions also take turns
    on a lock: a writer that finds the database locked sleeps in SQLite's busy handler (1, 2, 5,
    10 ms and longer), well past the moment the lock frees, while a thread waiting on the lock
    here starts as soon as the previous one ends. Under concurrent registrations those sleeps were
    most of the tail latency. Other processes (and the session's writers) still meet the busy
    handler, as before."""
    rt = runtime()
    if rt.engine.dialect.name != "sqlite":
        with rt.engine.begin() as connection:
            yield connection
        return
    with rt.write_lock, rt.engine.begin() as connection:
        yield connection


def close_session(_exc: BaseException | None = None) -> None:
    session: Session | None = g.pop("_pushgate_session", None)
    if session is not None:
        session.close()  # rolls back anything a failed request left uncommitted

"""Engine and session factory of the store, and schema migration through Alembic.

SQLite (the embedded default) runs in WAL mode with ``synchronous=NORMAL`` and a busy timeout, so
the gateway's request threads and the in-process worker can write concurrently without
"database is locked" errors; foreign keys are switched on per connection. PostgreSQL needs nothing
special.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Dialect, Engine, create_engine, event, inspect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import ConfigError
from core.secrets import private_file

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine for ``url`` with the per-dialect settings described above."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:" and not path.startswith("file:"):
            private_file(Path(path))  # the store holds tokens, device data and profiles
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    """The applied migration, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def database_failure(engine: Engine, exc: BaseException) -> str | None:
    """One line for a database error of ``engine`` (None for any other exception): that it is not
    migrated when it is not, else what the driver said."""
    if not isinstance(exc, SQLAlchemyError):
        return None
    try:
        migrated, current = is_migrated(engine), current_revision(engine)
    except SQLAlchemyError:
        return f"the database failed: {database_error(exc)}"
    if not migrated:
        return (
            f"the database is at migration {current or 'none'}, this pushgate needs {head_revision()}: "
            "run flask --app wsgi db upgrade"
        )
    return f"the database failed: {database_error(exc)}"


def database_error(exc: Exception) -> str:
    """One line saying what the driver said: the first line of its message, without SQL or
    SQLAlchemy's background link."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return lines[0] if lines else type(original).__name__


def check_reachable(engine: Engine) -> None:
    """Connect once; a :class:`ConfigError` of one line naming ``PUSHGATE_DATABASE_URL`` (its
    password hidden) and the driver's reason when that fails, so that start-up stops with it."""
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        where = engine.url.render_as_string(hide_password=True)
        reason = database_error(exc)
        raise ConfigError(f"the database of PUSHGATE_DATABASE_URL ({where}) is unreachable: {reason}") from None


def is_migrated(engine: Engine) -> bool:
    """True when the database carries the newest migration."""
    if "alembic_version" not in inspect(engine).get_table_names():
        return False
    return current_revision(engine) == head_revision()


def placeholder(dialect: Dialect) -> str:
    """The driver's positional placeholder, for the few hot statements sent straight to it
    (``exec_driver_sql``): ``?`` for sqlite3, ``%s`` for psycopg."""
    return "%s" if dialect.paramstyle in ("format", "pyformat") else "?"


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    """The engine ``sessions`` is bound to, for work that needs a plain connection of its own (a
    Core query on the worker's tick, a segment import's temporary tables)."""
    with sessions() as session:
        bind = session.get_bind()
    if not isinstance(bind, Engine):
        raise TypeError("the session factory must be bound to an engine")
    return bind

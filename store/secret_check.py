"""Whether the secret key a gateway starts with is the one its database was written with.

Credentials, user-key secrets and queued erasures are sealed with ``PUSHGATE_SECRET_KEY``, and the
tracking signatures pushes carry are derived from it. A gateway started with another valid key
used to run as if nothing were wrong, its deliveries stalling on credentials it could not open.
So the database keeps a value sealed with its key (table ``secret_check``, migration 0013) and
every entry point calls :func:`check_secret_key` at start: a key that cannot open it stops the
command or the server with one line naming the setting.

The value is written by the first start that finds the table without it, and only when every
sealed value already in the database opens with that key. A database that predates the check
value and is started with another key is refused the same way, instead of having the wrong key
written down as the right one. A database not migrated that far (no table) is not checked: the
migration that makes the table runs first, and the next start writes the value.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import ConfigError
from core.secrets import SecretBox
from store.models import App, AppPlatform, PrivacyRequest, SecretCheck

#: The row of the key ``PUSHGATE_SECRET_KEY`` holds.
SECRET_KEY = "PUSHGATE_SECRET_KEY"
#: Every column holding a value sealed with the secret key.
SEALED_COLUMNS = (AppPlatform.credentials, App.user_key_secret, PrivacyRequest.identities)


def check_secret_key(engine: Engine, box: SecretBox, wrong_key: str) -> None:
    """Raise :class:`ConfigError` with ``wrong_key`` (one line, from :func:`core.secrets.wrong_key`)
    when ``box``'s key is not the database's; write the check value when the database has none
    yet and everything sealed in it opens with ``box``."""
    if not inspect(engine).has_table(SecretCheck.__tablename__):
        return
    with Session(engine) as session:
        stored = session.get(SecretCheck, SECRET_KEY)
        if stored is None:
            if not all(box.opens(value) for value in _sealed_values(session)):
                raise ConfigError(wrong_key)
            session.add(SecretCheck(name=SECRET_KEY, sealed=box.check_value()))
            try:
                session.commit()
                return
            except IntegrityError:  # another process starting at the same time wrote it first
                session.rollback()
                stored = session.get(SecretCheck, SECRET_KEY)
                assert stored is not None
        if not box.opens(stored.sealed):
            raise ConfigError(wrong_key)


def _sealed_values(session: Session) -> Iterator[bytes]:
    """Every value sealed in the database: a few per app, and the erasures not yet sent."""
    for column in SEALED_COLUMNS:
        yield from (value for value in session.scalars(select(column).where(column.is_not(None))).all() if value)

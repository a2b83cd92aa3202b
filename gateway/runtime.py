"""What a running gateway holds: settings, the database, the credential box.

One :class:`Runtime` is built by the app factory and kept in ``app.extensions["pushgate"]``; the
CLI, the views and (later) the worker reach it through :func:`runtime`. A request gets one
session (:func:`db`), closed at teardown; views commit, services never do.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.secrets import SecretBox


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    box: SecretBox


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


def close_session(_exc: BaseException | None = None) -> None:
    session: Session | None = g.pop("_pushgate_session", None)
    if session is not None:
        session.close()  # rolls back anything a failed request left uncommitted

"""Shared fixtures: a migrated database (SQLite, or PostgreSQL when PUSHGATE_TEST_DATABASE_URL is
set), a fresh app per test with every table emptied afterwards, API keys of each role, and a live
HTTP server on loopback for tests that must go through real sockets."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete
from werkzeug.serving import BaseWSGIServer, make_server

from domain.keys import create_key
from gateway.app import create_app
from gateway.runtime import runtime
from store import db as store_db
from store.models import Base

TEST_SECRET = Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("PUSHGATE_TEST_DATABASE_URL") or (f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}")
    if url.startswith("postgresql"):
        engine = store_db.make_engine(url)
        with engine.begin() as conn:  # start from nothing, whatever an earlier run left
            Base.metadata.drop_all(conn)
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        engine.dispose()
    store_db.upgrade(url)
    return url


@pytest.fixture
def settings_overrides(database_url: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "instance_path": tmp_path / "instance",
        "secret_key": TEST_SECRET,
        "public_url": "https://push.example.test",
    }


@pytest.fixture
def app(settings_overrides: dict[str, Any]) -> Iterator[Flask]:
    application = create_app(overrides=settings_overrides)
    application.config["TESTING"] = True
    yield application
    engine = runtime_of(application).engine
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))
    engine.dispose()


def runtime_of(application: Flask) -> Any:
    with application.app_context():
        return runtime()


@pytest.fixture
def gateway_with(settings_overrides: dict[str, Any]) -> Iterator[Callable[..., Flask]]:
    """Makes more gateways on the test database, each with some settings changed; their engines
    are closed at the end of the test (the ``app`` fixture's cleanup empties the tables)."""
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        application = create_app(overrides={**settings_overrides, **overrides})
        application.config["TESTING"] = True
        made.append(application)
        return application

    yield make
    for application in made:
        runtime_of(application).engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


class Keys:
    """Bearer headers for one key of each role."""

    def __init__(self, application: Flask) -> None:
        self.values: dict[str, str] = {}
        with runtime_of(application).sessions.begin() as session:
            for role in ("admin", "marketer", "viewer"):
                _key, full = create_key(session, name=f"test {role}", role=role)
                self.values[role] = full

    def __call__(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.values[role]}"}

    @property
    def admin(self) -> dict[str, str]:
        return self("admin")

    @property
    def marketer(self) -> dict[str, str]:
        return self("marketer")

    @property
    def viewer(self) -> dict[str, str]:
        return self("viewer")


@pytest.fixture
def keys(app: Flask) -> Keys:
    return Keys(app)


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served over real HTTP on 127.0.0.1; yields its base URL."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)

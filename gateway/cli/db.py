"""``flask --app wsgi db upgrade|downgrade|current``: the store's schema migrations (Alembic)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from gateway.runtime import runtime
from store import db as store_db

db_cli = AppGroup("db", help="Database schema migrations.")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    store_db.upgrade(runtime().settings.resolved_database_url, revision)
    click.echo(f"database at {store_db.current_revision(runtime().engine)}")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ('base' empties the database)."""
    store_db.downgrade(runtime().settings.resolved_database_url, revision)
    click.echo(f"database at {store_db.current_revision(runtime().engine)}")


@db_cli.command("current")
def db_current() -> None:
    """Print the applied migration and whether it is the newest."""
    current = store_db.current_revision(runtime().engine)
    head = store_db.head_revision()
    click.echo(f"current: {current or 'none'}; newest: {head}")

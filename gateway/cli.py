"""Command-line interface: ``flask --app wsgi db ...`` and ``flask --app wsgi keys ...``.

Commands call the same domain functions as the API. Errors are printed as one line and exit 1;
the new key is the last line ``keys create`` prints, so scripts can take it with ``tail -n 1``.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from core.errors import ClientError
from domain import keys as key_service
from gateway.runtime import runtime
from store import db as store_db

db_cli = AppGroup("db", help="Database schema migrations.")
keys_cli = AppGroup("keys", help="API keys for the JSON API.")


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


@keys_cli.command("create")
@click.option("--role", type=click.Choice(key_service.ROLES), required=True)
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option("--if-none", is_flag=True, help="Only create the key when no active key exists (first run).")
def keys_create(role: str, name: str, if_none: bool) -> None:
    """Create an API key; the key itself is printed once, as the last line."""
    with runtime().sessions.begin() as session:
        if if_none and key_service.list_keys(session):
            click.echo("an active API key exists already; list them with: flask --app wsgi keys list")
            return
        try:
            key, full = key_service.create_key(session, name=name, role=role)
        except ClientError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"created key {key.id} ({key.role}) for {key.name}; store it now, it is not shown again:")
    click.echo(full)


@keys_cli.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
def keys_list(include_revoked: bool) -> None:
    """List keys (never the secrets)."""
    with runtime().sessions() as session:
        rows = key_service.list_keys(session, include_revoked=include_revoked)
        if not rows:
            click.echo("no keys")
        for key in rows:
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            click.echo(f"{key.id}\t{key.role}\tpgk_{key.lookup}_…\t{state}\t{key.name}")


@keys_cli.command("revoke")
@click.argument("key_id", type=int)
def keys_revoke(key_id: int) -> None:
    """Revoke key KEY_ID; requests with it get 401 from now on."""
    with runtime().sessions.begin() as session:
        try:
            key = key_service.revoke_key(session, key_id)
        except ClientError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"revoked key {key.id} ({key.name})")


@click.command("worker")
def worker_command() -> None:
    """Send deliveries in this process until interrupted (use PUSHGATE_WORKER=off on the servers)."""
    import signal
    import threading

    from gateway.worker import build_worker, start_scheduler

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    worker = build_worker(runtime())
    worker.start()
    scheduler = start_scheduler(runtime())
    click.echo("worker running; Ctrl-C stops it")
    done.wait()
    if scheduler is not None:
        scheduler.stop()
    worker.stop()


def register_cli(app: Flask) -> None:
    from gateway.devtools import register_devtools
    from sdk_configs.cli import sdk_config_command

    register_devtools(app)
    app.cli.add_command(worker_command)
    app.cli.add_command(db_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(sdk_config_command)
    from gateway.sync_cli import sync_cli

    app.cli.add_command(sync_cli)

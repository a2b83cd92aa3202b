"""``flask --app wsgi keys create|list|revoke``: API keys for the JSON API.

The new key is the last line ``keys create`` prints, so scripts can take it with ``tail -n 1``.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from core.errors import ClientError
from domain import keys as key_service
from gateway.runtime import runtime

keys_cli = AppGroup("keys", help="API keys for the JSON API.")


@keys_cli.command("create")
@click.option("--role", type=click.Choice(key_service.ROLES), required=True)
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option("--if-none", is_flag=True, help="Only create the key when no active key exists (first run).")
@click.option(
    "--app",
    "app_ids",
    type=click.IntRange(1, 2**31 - 1),
    multiple=True,
    help="Limit the key to this app (repeatable): it sees and acts on those apps only.",
)
def keys_create(role: str, name: str, if_none: bool, app_ids: tuple[int, ...]) -> None:
    """Create an API key; the key itself is printed once, as the last line."""
    with runtime().sessions.begin() as session:
        if if_none and key_service.list_keys(session):
            click.echo("an active API key exists already; list them with: flask --app wsgi keys list")
            return
        try:
            key, full = key_service.create_key(session, name=name, role=role, apps=app_ids)
        except ClientError as exc:
            raise click.ClickException(exc.message) from None
        limited = f", limited to apps {', '.join(map(str, sorted(set(app_ids))))}" if app_ids else ""
        click.echo(f"created key {key.id} ({key.role}{limited}) for {key.name}; store it now, it is not shown again:")
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
            apps = ",".join(str(link.app_id) for link in key.app_ids) or "all apps"
            click.echo(f"{key.id}\t{key.role}\tpgk_{key.lookup}_…\t{state}\t{apps}\t{key.name}")


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

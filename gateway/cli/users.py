"""``flask --app wsgi users create|list|set-password``: the people who sign in to the console.

Without ``--password``, ``users create`` and ``users set-password`` generate one and print it as
their last line, so scripts can take it with ``tail -n 1``; it is stored only as an argon2 hash
and cannot be shown again.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from core.errors import ClientError
from domain import keys as key_service
from domain import users as user_service
from gateway.runtime import runtime

users_cli = AppGroup("users", help="Console users (e-mail, password, role).")


@users_cli.command("create")
@click.option("--email", required=True, help="What the user signs in with.")
@click.option("--role", type=click.Choice(key_service.ROLES), required=True)
@click.option("--password", help="The password; without it one is generated and printed as the last line.")
def users_create(email: str, role: str, password: str | None) -> None:
    """Create a console user."""
    with runtime().sessions.begin() as session:
        try:
            user, chosen = user_service.create_user(session, email=email, role=role, password=password)
        except ClientError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"created user {user.id} ({user.role}) {user.email}; sign in at /console/")
    if password is None:
        click.echo("its generated password, shown once:")
        click.echo(chosen)


@users_cli.command("list")
def users_list() -> None:
    """List console users (never their passwords)."""
    with runtime().sessions() as session:
        rows = session.scalars(user_service.list_query()).all()
        if not rows:
            click.echo("no users")
        for user in rows:
            seen = f"{user.last_sign_in_at:%Y-%m-%d %H:%M}" if user.last_sign_in_at else "never signed in"
            click.echo(f"{user.id}\t{user.role}\t{user.email}\t{seen}")


@users_cli.command("set-password")
@click.option("--email", required=True)
@click.option("--password", help="The new password; without it one is generated and printed as the last line.")
def users_set_password(email: str, password: str | None) -> None:
    """Reset a user's password (every session of theirs ends)."""
    with runtime().sessions.begin() as session:
        user = user_service.find(session, email)
        if user is None:
            raise click.ClickException(f"no user with e-mail {email.strip().lower()}")
        try:
            chosen = user_service.set_password(session, user, password)
        except ClientError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"password of {user.email} changed; their sessions have ended")
    if password is None:
        click.echo("the new generated password, shown once:")
        click.echo(chosen)

"""The command line: ``flask --app wsgi <group> ...``, one module per group.

==============  ==========================================================
module          commands
==============  ==========================================================
``db``          ``db upgrade``, ``db downgrade``, ``db current``
``keys``        ``keys create``, ``keys list``, ``keys revoke``
``users``       ``users create``, ``users list`` (console sign-ins)
``worker``      ``worker``
``sync``        ``sync segments|profiles|upload|provision|logs``
``sdk_config``  ``sdk-config APP --platform --sdk``
``devtools``    ``emulators``, ``demo`` (local peers and a demo app)
==============  ==========================================================

Commands call the same domain functions as the API. Errors are printed as one line and exit 1,
a database that is unreachable or not migrated included (:func:`one_line_database_errors`).
"""

from __future__ import annotations

import functools
from typing import Any

import click
from flask import Flask


def register_cli(app: Flask) -> None:
    from gateway.cli.db import db_cli
    from gateway.cli.devtools import register_devtools
    from gateway.cli.keys import keys_cli
    from gateway.cli.sdk_config import sdk_config_command
    from gateway.cli.sync import sync_cli
    from gateway.cli.users import users_cli
    from gateway.cli.worker import worker_command

    register_devtools(app)
    app.cli.add_command(worker_command)
    app.cli.add_command(db_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(sdk_config_command)
    app.cli.add_command(sync_cli)
    app.cli.add_command(users_cli)
    for command in app.cli.commands.values():
        one_line_database_errors(app, command)


def one_line_database_errors(app: Flask, command: click.Command) -> None:
    """Make ``command`` (and a group's subcommands) print a database failure as one line (exit 1)
    instead of SQLAlchemy's traceback of the statement."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            one_line_database_errors(app, sub)
    if command.callback is None or getattr(command.callback, "_one_line", False):
        return
    callback = command.callback

    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from store.db import database_failure

        try:
            return callback(*args, **kwargs)
        except Exception as exc:
            line = database_failure(app.extensions["pushgate"].engine, exc)
            if line is None:
                raise
            raise click.ClickException(line) from None

    wrapper._one_line = True  # type: ignore[attr-defined]
    command.callback = wrapper

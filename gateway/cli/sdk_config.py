"""``flask --app wsgi sdk-config APP --platform ios|android --sdk ... [--out FILE]``.

Prints the same JSON document as ``GET /api/v1/apps/{id}/sdk-config`` (see
:mod:`sdk_configs.generator`), to standard output or to FILE. APP is the app's id, or its name.
Refusals (unknown app, missing platform part or identifier, ``PUSHGATE_PUBLIC_URL`` not set) are
one line on standard error and exit status 1; warnings go to standard error too, so the JSON on
standard output stays parseable.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import with_appcontext

from core.errors import ClientError
from domain import apps
from gateway.runtime import runtime
from sdk_configs.generator import AppFacts, generate
from sdk_configs.keys import PLATFORMS, SDKS


@click.command("sdk-config")
@click.argument("app_ref", metavar="APP")
@click.option("--platform", type=click.Choice(PLATFORMS), required=True)
@click.option("--sdk", type=click.Choice(SDKS), required=True, help="The SDK family the app uses.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSON here, not to stdout.")
@with_appcontext
def sdk_config_command(app_ref: str, platform: str, sdk: str, out: Path | None) -> None:
    """Print the SDK configuration and code for app APP (id or name) on one platform."""
    rt = runtime()
    with rt.sessions() as session:
        try:
            config = generate(AppFacts.of(apps.find_app(session, app_ref)), platform, sdk, rt.settings.public_url)
        except ClientError as exc:
            raise click.ClickException(exc.message) from None
    text = json.dumps(config.as_dict(), indent=2, ensure_ascii=False) + "\n"
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote the {sdk} configuration of app {config.app_id} ({platform}) to {out}", err=True)

"""Developer commands: ``flask --app wsgi emulators`` and ``flask --app wsgi demo``.

``emulators`` runs the local APNs and FCM peers with an inbox page, and the local Experience
Platform peer, until interrupted, and writes the settings that point a gateway at them to
``<instance>/emulators.env``. ``demo`` creates a demo
app whose credentials those peers accept, two devices and a welcome delivery, so the first
``make run`` shows a push arriving, and a demo marketer for the console whose password is kept in
``<instance>/console-demo-password`` (owner-only) so that every ``make run`` can print the sign-in.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.cli import with_appcontext

from core.config import Settings
from core.secrets import private_file
from domain import apps, audiences, deliveries, profiles, test_devices, users
from domain.messages import Message
from domain.subscriptions import Registration, register
from gateway.runtime import runtime
from push import payloads
from store.types import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from sync.peers.platform import PeerConfig

DEMO_APP = "pushgate demo"
DEMO_PROFILE = "demo@example.com"
DEMO_IOS_TOKEN = "5eed" * 16
#: As long as real FCM registration tokens are (150+ characters: an instance id, ":APA91b", base64url).
DEMO_ANDROID_TOKEN = (
    "cDemo7pushgateQ0dev:APA91bLTlc1A2aOk19kyyURC8YO1jcSb7cXNefjqqRSJ3hD_1dKA68CDk86e08HkSimimTBMXeH85tQuVBQv9S526"
    "T30GYnSG0jRs1MYaTn0DWuTNLRGfG17gqBUFNGISuyZ9HbvnaPcitAYQ"
)
DEMO_MARKETER = "marketer@example.com"
#: The demo audience's segment id (a UUID, as the Platform's are).
DEMO_SEGMENT = "0d3e5f6a-7b8c-4d9e-8f01-23456789abcd"


@click.command("emulators")
@click.option("--apns-port", type=int, help="Default: PUSHGATE_EMULATOR_APNS_PORT (8443).")
@click.option("--fcm-port", type=int, help="Default: PUSHGATE_EMULATOR_FCM_PORT (8444).")
@click.option("--inbox-port", type=int, help="Default: PUSHGATE_EMULATOR_INBOX_PORT (8440).")
@click.option("--slow-delay", default=3.0, show_default=True, help="Seconds the 'slow' token prefixes wait.")
@click.option(
    "--platform-port",
    type=int,
    help="Experience Platform peer; -1 leaves it off. Default: PUSHGATE_EMULATOR_PLATFORM_PORT.",
)
@with_appcontext
def emulators_command(
    apns_port: int | None, fcm_port: int | None, inbox_port: int | None, slow_delay: float, platform_port: int | None
) -> None:
    """Run the local APNs, FCM and Experience Platform peers with an inbox page until Ctrl-C."""
    rt = runtime()
    instance = rt.settings.instance_path
    apns_port = rt.settings.emulator_apns_port if apns_port is None else apns_port
    fcm_port = rt.settings.emulator_fcm_port if fcm_port is None else fcm_port
    inbox_port = rt.settings.emulator_inbox_port if inbox_port is None else inbox_port
    platform_port = rt.settings.emulator_platform_port if platform_port is None else platform_port
    from gateway.cli import peers as runner  # the peers load only for this command

    try:
        running = runner.start(
            runner.StoredCredentials(rt.sessions, rt.box),
            instance / "emulators" / "tls",
            apns_port=apns_port,
            fcm_port=fcm_port,
            inbox_port=inbox_port,
            slow_delay=slow_delay,
            platform_port=None if platform_port < 0 else platform_port,
            platform_config=_platform_config(rt.settings),
        )
    except OSError as exc:  # a port taken (another make run?) or not ours to take
        raise click.ClickException(
            f"the emulators cannot start: {exc.strerror or exc}; stop what uses it, or choose other ports "
            "(--apns-port, --fcm-port, --inbox-port, --platform-port)"
        ) from None
    env = running.environment()
    env_file = instance / "emulators.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    click.echo(f"APNs emulator  {running.apns.url}")
    click.echo(f"FCM emulator   {running.fcm.base_url}  (OAuth token URL {running.fcm.token_url})")
    click.echo(f"inbox          {running.inbox_url}/  (JSON: {running.inbox_url}/inbox)")
    if running.platform is not None:
        click.echo(f"AEP peer       {running.platform.url}  (state: {running.platform.url}/_peer/state)")
    click.echo(f"point a gateway at them with the settings in {env_file}:")
    for key, value in env.items():
        click.echo(f"  {key}={value}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    running.stop()
    env_file.unlink(missing_ok=True)


def _platform_config(settings: Settings) -> PeerConfig:
    """The peer takes the configured AEP identifiers (client id, org, sandbox, tenant, inlet),
    else its own defaults, but always its own client secret: the settings it prints and writes to
    emulators.env must never carry a real one."""
    from sync.peers.platform import PeerConfig

    defaults = PeerConfig()
    return PeerConfig(
        client_id=settings.aep_client_id or defaults.client_id,
        client_secret=defaults.client_secret,
        org_id=settings.aep_org_id or defaults.org_id,
        sandbox=settings.aep_sandbox or defaults.sandbox,
        tenant_id=settings.aep_tenant_id or defaults.tenant_id,
        inlet_id=settings.aep_inlet_id or defaults.inlet_id,
    )


@click.command("demo")
@click.option(
    "--fcm-token-url",
    help="Where the demo service account gets its OAuth tokens. Default: the FCM emulator's, "
    "https://127.0.0.1:<PUSHGATE_EMULATOR_FCM_PORT>/token.",
)
@with_appcontext
def demo_command(fcm_token_url: str | None) -> None:
    """Create the demo app, two devices and a welcome delivery (once: sent when the gateway runs)."""
    rt = runtime()
    fcm_token_url = fcm_token_url or f"https://127.0.0.1:{rt.settings.emulator_fcm_port}/token"
    with rt.sessions.begin() as session:
        app = apps.by_name(session, DEMO_APP)
        if app is None:
            if not rt.settings.fcm_endpoint:
                raise click.ClickException(
                    "the demo app sends to the local emulators: run `flask --app wsgi emulators` and load "
                    "the settings it writes (instance/emulators.env) first, as `make run` does"
                )
            app = apps.create_app(session, rt.box, _demo_app(fcm_token_url), any_token_uri=True)
        if profiles.find(session, DEMO_PROFILE) is None:
            profiles.upsert_profile(
                session,
                DEMO_PROFILE,
                profiles.ProfileIn(email=DEMO_PROFILE, first_name="Ada"),
                reconciliation_field="external_id",
            )
        devices: dict[str, int] = {}
        for platform, token in (("ios", DEMO_IOS_TOKEN), ("android", DEMO_ANDROID_TOKEN)):
            devices[platform], _new = register(
                session,
                Registration(
                    app_id=app.id,
                    platform=platform,
                    token=token,
                    sdk="campaign-classic",
                    push_provider="apns" if platform == "ios" else "fcm",
                    user_key=DEMO_PROFILE,
                    sets_user_key=True,
                    device={"device_model": "Demo device"},
                ),
                reconciliation_field="external_id",
            )
        _console_samples(session, app.id, devices)
        # One welcome delivery per demo app: every later start finds it by its idempotency key.
        delivery, created = deliveries.create_delivery(
            session,
            deliveries.DeliveryCreate(
                app_id=app.id,
                name="Welcome to pushgate",
                target=deliveries.Target(all=True),
                platforms=["android", "ios"],
                message=Message(title="Hello {{ profile.first_name }}", body="Your first push through pushgate."),
                validity_seconds=3600,
                idempotency_key=f"pushgate-demo-welcome-{app.id}",
            ),
            payloads=payloads,
            created_by="flask --app wsgi demo",
        )
        if created:
            click.echo(
                f"demo app {app.id}: welcome delivery {delivery.id} to 2 devices, sent as soon as the gateway runs"
            )
        else:
            click.echo(
                f"demo app {app.id}: its welcome delivery {delivery.id} was made at the first start ({delivery.status})"
            )
        click.echo(_demo_marketer(session, rt.settings))


def _console_samples(session: Session, app_id: int, devices: dict[str, int]) -> None:
    """What a marketer tries first in the console: the two demo devices as the app's test devices
    (proofs) and an audience holding the demo profile."""
    known = test_devices.subscription_ids(session, app_id)
    for platform, subscription_id in devices.items():
        if subscription_id not in known:
            test_devices.add(session, app_id, subscription_id, f"Demo {'iPhone' if platform == 'ios' else 'Android'}")
    audience_id = audiences.for_segment(session, DEMO_SEGMENT, "Demo audience", rename=False, now=utcnow())
    profile = profiles.find(session, DEMO_PROFILE)
    if profile is not None:
        audiences.add_members(session, audience_id, [profile.id], now=utcnow())


def _demo_marketer(session: Session, settings: Settings) -> str:
    """Create the demo marketer once; the sign-in line to print (its password when still known)."""
    password_file = settings.instance_path / "console-demo-password"
    user = users.find(session, DEMO_MARKETER)
    if user is None:
        _user, password = users.create_user(session, email=DEMO_MARKETER, role="marketer")
        private_file(password_file)
        password_file.write_text(password + "\n")
    elif password_file.exists() and users.verify(user, kept := password_file.read_text().strip()):
        password = kept
    else:  # changed in the console since: only its owner knows it
        return (
            f"console: sign in as {DEMO_MARKETER} with the password it was given "
            f"(reset it with: flask --app wsgi users set-password --email {DEMO_MARKETER})"
        )
    return f"console: sign in at /console/ as {DEMO_MARKETER} with the password {password}"


def _demo_app(token_url: str) -> apps.AppCreate:
    """The demo app, with credentials the local peers accept (a new key pair each time)."""
    key_p8 = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    from push.peers.fcm import new_service_account

    account = new_service_account("pushgate-demo", token_url)
    return apps.AppCreate.model_validate(
        {
            "name": DEMO_APP,
            "ios": {
                "bundle_id": "com.example.pushgate.demo",
                "apns": {"key_p8": key_p8, "key_id": "DEMOKEY001", "team_id": "DEMOTEAM01", "environment": "sandbox"},
            },
            "android": {"package_name": "com.example.pushgate.demo", "fcm": {"service_account": account}},
        }
    )


def register_devtools(app: Flask) -> None:
    app.cli.add_command(emulators_command)
    app.cli.add_command(demo_command)

"""Console: apps (``/console/apps/``). Every role reads the list and an app's page; admins create
apps, change them and upload their credentials, as the API lets admin keys do; marketers and
admins also read the SDK configuration, as ``GET /api/v1/apps/{id}/sdk-config`` lets them.

Credentials go in through file uploads (:mod:`gateway.console.apps_form`) and never come out: pages
show what :func:`domain.apps.describe` shows (key id, team id, certificate subject and expiry, FCM
project and client e-mail). After a change the integration-key cache is cleared, as the API does.
A creation that turns user-key verification on shows the app's new secret once, on the answer to
the POST (the only time it can be read), and so does making a new one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from core.errors import BadRequest, ClientError, NotFound
from domain import apps
from domain.fields import ID_MAX
from domain.user_keys import MODES
from gateway.console import apps_form
from gateway.console.access import actor, can, requires
from gateway.runtime import db, runtime
from sdk_configs.generator import AppFacts, generate
from sdk_configs.keys import PLATFORMS, SDKS
from store.models import App

bp = Blueprint("apps", __name__, url_prefix="/apps")
log = logging.getLogger("pushgate.console")
PAGE_SIZE = 50
PLATFORM_NAMES = {"ios": "iOS", "android": "Android"}
SDK_NAMES = {
    "campaign-classic": "Campaign Classic",
    "campaign-standard": "Campaign Standard",
    "edge": "Edge",
    "native": "Native (pushgate API)",
}
LANGUAGE_NAMES = {"kotlin": "Kotlin", "swift": "Swift"}
MODE_NAMES = {"off": "Off", "optional": "Optional", "required": "Required"}
Page = str | tuple[str, int]


@bp.get("/")
@requires("viewer")
def index() -> str:
    after = _after(request.args.get("after"))
    rows = apps.listing(db(), after, PAGE_SIZE + 1)
    box = runtime().box
    shown = [apps.describe(app, box) for app in rows[:PAGE_SIZE]]
    next_url = url_for(".index", after=shown[-1]["id"]) if len(rows) > PAGE_SIZE else None
    first_url = url_for(".index") if after is not None else None
    return render_template("console/apps/index.html", apps=shown, next_url=next_url, first_url=first_url)


@bp.route("/new", methods=["GET", "POST"])
@requires("admin")
def new() -> Page | Response:
    if request.method == "GET":
        return _new_form({"apns_environment": "production", "user_key_verification": "off"}, {})
    box = runtime().box
    try:
        data = apps_form.creation(request.form, request.files)
        app = apps.create_app(db(), box, data, any_token_uri=_any_token_uri())
    except apps_form.FormInvalid as exc:
        db().rollback()
        return _new_form(apps_form.kept(request.form), exc.errors), exc.status
    except ClientError as exc:
        db().rollback()
        refused = apps_form.refusal(exc)
        return _new_form(apps_form.kept(request.form), refused.errors), refused.status
    db().commit()
    runtime().integration_keys.clear()
    log.info("app %s (%s) created in the console by %s", app.id, app.name, actor())
    secret = apps.user_key_secret(app, box)  # a new app's secret is the one this request made
    if secret is not None:
        return render_template(
            "console/apps/secret.html", app=apps.describe(app, box), secret=secret, created=True
        ), 201
    flash(f"App {app.name} created.", "success")
    return redirect(url_for(".show", app_id=app.id), 303)


@bp.get("/<int:app_id>")
@requires("viewer")
def show(app_id: int) -> Page:
    return _app_page(app_id)


@bp.post("/<int:app_id>")
@requires("admin")
def update(app_id: int) -> Page | Response:
    current = apps.describe(apps.get_app(db(), app_id), runtime().box)
    return _save(app_id, "details", "Details saved.", lambda: apps_form.details_patch(request.form, current))


@bp.post("/<int:app_id>/apns")
@requires("admin")
def apns_credentials(app_id: int) -> Page | Response:
    return _save(app_id, "apns", "APNs credentials saved.", lambda: apps_form.apns_patch(request.form, request.files))


@bp.post("/<int:app_id>/fcm")
@requires("admin")
def fcm_credentials(app_id: int) -> Page | Response:
    return _save(app_id, "fcm", "FCM service account saved.", lambda: apps_form.fcm_patch(request.form, request.files))


@bp.post("/<int:app_id>/user-key-secret")
@requires("admin")
def user_key_secret(app_id: int) -> str:
    box = runtime().box
    app, secret = apps.rotate_user_key_secret(db(), box, app_id)
    db().commit()
    runtime().integration_keys.clear()
    log.info("app %s (%s): new user-key secret, made in the console by %s", app.id, app.name, actor())
    return render_template("console/apps/secret.html", app=apps.describe(app, box), secret=secret, created=False)


def _save(app_id: int, form: str, done: str, build: Callable[[], apps.AppPatch]) -> Page | Response:
    """Apply the AppPatch ``build()`` reads from the posted ``form``; on a refusal, the app page
    again with the errors next to that form's fields."""
    try:
        patch = build()
        app = apps.update_app(db(), runtime().box, app_id, patch, any_token_uri=_any_token_uri())
    except apps_form.FormInvalid as exc:
        db().rollback()
        return _app_page(app_id, form=form, errors=exc.errors, status=exc.status)
    except NotFound:
        raise
    except ClientError as exc:
        db().rollback()
        refused = apps_form.refusal(exc)
        return _app_page(app_id, form=form, errors=refused.errors, status=refused.status)
    db().commit()
    runtime().integration_keys.clear()
    changed = ", ".join(sorted(patch.model_fields_set)) or "nothing"
    log.info("app %s (%s) changed in the console by %s: %s", app.id, app.name, actor(), changed)
    flash(done, "success")
    return redirect(url_for(".show", app_id=app.id), 303)


def _new_form(values: dict[str, str], errors: dict[str, str]) -> str:
    return render_template("console/apps/new.html", values=values, errors=errors, modes=_modes())


def _app_page(app_id: int, *, form: str | None = None, errors: dict[str, str] | None = None, status: int = 200) -> Page:
    app = apps.get_app(db(), app_id)
    view = apps.describe(app, runtime().box)
    values = apps_form.kept(request.form) if form == "details" else _details(view)
    sdk = _sdk_config(app) if can("marketer") else None
    if sdk is not None and sdk["status"] != 200 and status == 200:
        status = sdk["status"]
    page = render_template(
        "console/apps/show.html",
        app=view,
        stored=app,
        form=form,
        errors=errors or {},
        values=values,
        apns_values=apps_form.kept(request.form) if form == "apns" else {"apns_environment": _environment(view)},
        modes=_modes(),
        sdk=sdk,
    )
    return page, status


def _details(view: dict[str, Any]) -> dict[str, str]:
    """The details form filled in with the app as stored."""
    values = {name: view[name] or "" for name in (*apps_form.IDENTIFIERS, "name", "user_key_verification")}
    for platform, identifier in (("ios", "bundle_id"), ("android", "package_name")):
        part = view[platform] or {}
        values[f"{platform}_{identifier}"] = part.get(identifier, "")
        values[f"{platform}_integration_key"] = part.get("integration_key", "")
    return values


def _environment(view: dict[str, Any]) -> str:
    credentials = (view["ios"] or {}).get("apns") or {}
    return str(credentials.get("environment") or "production")


def _sdk_config(app: App) -> dict[str, Any]:
    """The SDK configuration chosen by the query (platform, sdk), as the API generates it; a
    refusal (the app lacks what the SDK needs, no public URL) is shown in its place."""
    default = next((p for p in PLATFORMS if any(part.platform == p for part in app.platforms)), "ios")
    platform = request.args.get("platform") or default
    sdk = request.args.get("sdk") or SDKS[0]
    shown: dict[str, Any] = {
        "platform": platform,
        "sdk": sdk,
        "platforms": [(p, PLATFORM_NAMES[p]) for p in PLATFORMS],
        "sdks": [(s, SDK_NAMES[s]) for s in SDKS],
        "status": 200,
        "error": None,
    }
    try:
        config = generate(AppFacts.of(app), platform, sdk, runtime().settings.public_url)
    except ClientError as exc:
        shown.update(error=exc.message, status=exc.status if isinstance(exc, BadRequest) else 200)
        return shown
    what = f"{PLATFORM_NAMES[platform]} {SDK_NAMES[sdk]}"
    blocks = []
    for key, title, noun, value in (
        ("configuration", "Mobile SDK configuration", "configuration", config.configuration),
        ("legacy", "Legacy Campaign SDK settings", "legacy SDK settings", config.legacy),
        ("native", "Registration API settings", "registration settings", config.native),
    ):
        if value is not None:
            text = json.dumps(value, indent=2, ensure_ascii=False)
            blocks.append({"id": f"sdk-{key}", "title": title, "text": text, "copies": f"the {what} {noun}"})
    for language, code in config.snippets.items():
        title = f"{LANGUAGE_NAMES.get(language, language)} code"
        blocks.append({"id": f"sdk-{language}", "title": title, "text": code, "copies": f"the {what} {title}"})
    shown.update(blocks=blocks, warnings=config.warnings, what=what)
    return shown


def _modes() -> list[tuple[str, str]]:
    return [(mode, MODE_NAMES.get(mode, mode)) for mode in MODES]


def _any_token_uri() -> bool:
    """As the API: any FCM token_uri only while the gateway sends to another FCM."""
    return bool(runtime().settings.fcm_endpoint)


def _after(value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 10 and 0 < int(value) <= ID_MAX):
        abort(400, "after must be the id of an app, as the Next page link gives it")
    return int(value)

"""Console: the test devices of each app (``/console/deliveries/test-devices``), the subscriptions
that **Send proof** sends to.

Views of the ``deliveries`` blueprint (registered there): viewers read the list, marketers add a
device (named by its subscription id, its push token or its profile's external id, with a label)
and remove one. :mod:`domain.test_devices` refuses a subscription of another app, an unknown,
disabled or quarantined one; the refusal is shown next to the form, with the values kept.
"""

from __future__ import annotations

from typing import cast

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from core.errors import BadRequest, ClientError
from domain import apps as domain_apps
from domain import test_devices
from gateway.console import access
from gateway.console.compose import positive_id
from gateway.runtime import db
from store.models import App

FIND_BY = {"subscription": "Subscription id", "token": "Push token", "profile": "Profile external id"}


def _apps() -> list[App]:
    return sorted(db().scalars(domain_apps.list_query()), key=lambda a: a.name.lower())


def _app_id(value: str | None) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    number = positive_id(value)
    if number is None:
        raise BadRequest("app_id must be a positive whole number")
    return number


def _page(app_id: int | None, *, error: str | None = None, values: dict[str, str] | None = None) -> tuple[str, int]:
    apps = _apps()
    app = next((a for a in apps if a.id == app_id), None) if app_id else (apps[0] if apps else None)
    if app_id and app is None:
        raise BadRequest(f"no app with id {app_id}", code="unknown_app")
    page = render_template(
        "console/deliveries/test_devices.html",
        apps=apps,
        app=app,
        devices=test_devices.list_for_app(db(), app.id) if app else [],
        find_by=FIND_BY,
        error=error,
        values=values or {"by": "subscription"},
    )
    return page, 400 if error else 200


@access.requires("viewer")
def index() -> tuple[str, int]:
    return _page(_app_id(request.args.get("app_id")))


@access.requires("marketer")
def add() -> Response | tuple[str, int]:
    form = request.form
    app_id = _app_id(form.get("app_id"))
    if app_id is None:
        raise BadRequest("choose the app the test device belongs to")
    values = {name: form.get(name, "") for name in ("by", "value", "label")}
    by = values["by"] if values["by"] in FIND_BY else "subscription"
    session = db()
    label = values["label"].strip()
    try:
        ids = test_devices.find_subscriptions(session, app_id, cast(test_devices.FindBy, by), values["value"])
        added, refused = 0, None
        for sub_id in ids:  # a profile's devices: add those that can receive a proof
            try:
                test_devices.add(session, app_id, sub_id, label)
                added += 1
            except ClientError as exc:  # refused before anything was written
                refused = refused or exc
        if refused is not None and not added:
            raise refused
    except ClientError as exc:
        session.rollback()
        return _page(app_id, error=exc.message, values=values)
    session.commit()
    skipped = (
        f" ({len(ids) - added} of the profile's devices cannot receive a proof: {refused.message})" if refused else ""
    )
    flash(f"Test device “{label}” added{skipped}.", "success")
    return redirect(url_for("console.deliveries.test_devices", app_id=app_id), 303)


@access.requires("marketer")
def remove(device_id: int) -> Response:
    app_id = _app_id(request.form.get("app_id"))
    if app_id is None:
        raise BadRequest("choose the app the test device belongs to")
    session = db()
    test_devices.remove(session, app_id, device_id)
    session.commit()
    flash("Test device removed.", "success")
    return redirect(url_for("console.deliveries.test_devices", app_id=app_id), 303)

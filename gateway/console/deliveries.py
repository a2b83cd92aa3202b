"""Console: the deliveries list and the **New delivery** form (preview, proof, send, schedule).

The form posts to one view with the button pressed as ``action``: ``preview`` re-renders it with
the iOS and Android mock-ups; ``proof`` creates a proof (``proof=True``, "Proof: <name>") to the
chosen test devices and shows what it did on each; ``send`` and ``schedule`` lead to a
confirmation that states how many devices the delivery will reach
(:func:`domain.analysis.reach`), whose ``confirm`` creates it and goes to its report. Every step
calls the domain functions the API calls (:mod:`domain.deliveries`), with the same payload
encoding, and records the signed-in user's e-mail as ``created_by``. ``/preview`` answers the
page's script as JSON: the rendered fields, the payload sizes and the problems, as you type.
Test devices are kept on their own pages (:mod:`gateway.console.devices`).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from core.errors import BadRequest, ClientError, NotFound
from domain import analysis, deliveries, delivery_lists, test_devices
from domain import apps as domain_apps
from domain import audiences as domain_audiences
from domain.messages import Unsendable
from domain.templates.compiling import compile_message
from gateway.console import access, compose, devices
from gateway.console.compose import Form, FormErrors
from gateway.runtime import db
from gateway.worker import delivery_created
from push import payloads
from store.models import App, Delivery
from store.types import utcnow

bp = Blueprint("deliveries", __name__, url_prefix="/deliveries")
bp.add_url_rule("/test-devices", "test_devices", devices.index, methods=["GET"])
bp.add_url_rule("/test-devices", "add_test_device", devices.add, methods=["POST"])
bp.add_url_rule("/test-devices/<int:device_id>/remove", "remove_test_device", devices.remove, methods=["POST"])

FINAL = ("completed", "cancelled", "failed")
_KEY = re.compile(r"^console-[0-9a-f]{32}$")


@bp.get("/")
@access.requires("viewer")
def index() -> str:
    session = db()
    app_id = _int_arg("app_id")
    status = request.args.get("status") or None
    if status is not None and status not in deliveries.STATUSES:
        raise BadRequest(f"unknown status {status[:40]!r}; use one of {', '.join(deliveries.STATUSES)}")
    proofs = request.args.get("proofs") == "1"
    page = delivery_lists.recent(session, app_id=app_id, status=status, proofs=proofs, before=_int_arg("before"))
    counts = delivery_lists.counts_of(session, [d.id for d in page.deliveries])
    audience_ids = [int(d.target["audience"]) for d in page.deliveries if "audience" in d.target]
    names = delivery_lists.audience_names(session, audience_ids)
    apps = _apps()
    rows = [
        {"delivery": d, "counts": counts[d.id], "target": _target_summary(d.target, names), "app": apps.get(d.app_id)}
        for d in page.deliveries
    ]
    filters = {"app_id": app_id or "", "status": status or "", "proofs": "1" if proofs else ""}
    kept: dict[str, Any] = {k: v for k, v in filters.items() if v}
    return render_template(
        "console/deliveries/index.html",
        rows=rows,
        apps=apps,
        filters=filters,
        statuses=deliveries.STATUSES,
        next_url=url_for(".index", **kept, before=page.next_before) if page.next_before else None,
        first_url=url_for(".index", **kept) if request.args.get("before") else None,
    )


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    number = compose.positive_id(value)
    if number is None:
        raise BadRequest(f"{name} must be a positive whole number")
    return number


def _target_summary(target: dict[str, Any], audience_names: dict[int, str]) -> str:
    if "audience" in target:
        audience = int(target["audience"])
        return f"Audience: {audience_names.get(audience, f'#{audience} (deleted)')}"
    if "profiles" in target:
        shown = ", ".join(target["profiles"][:3])
        more = len(target["profiles"]) - 3
        return f"Profiles: {shown}" + (f" and {more} more" if more > 0 else "")
    if "subscriptions" in target:
        count = len(target["subscriptions"])
        return f"Subscriptions: {count}"
    return "All subscribers"


def _apps() -> dict[int, App]:
    return {a.id: a for a in sorted(db().scalars(domain_apps.list_query()), key=lambda a: a.name.lower())}


# -- the New delivery form ------------------------------------------------------------------------


@bp.route("/new", methods=["GET", "POST"])
@access.requires("marketer")
def new() -> Response | tuple[str, int] | tuple[Response, int]:
    if request.method == "GET":
        return _form_page(_defaults())
    form: Form = request.form
    action = form.get("action", "")
    if action == "preview":
        previews, errors = _previews(form)
        return _form_page(form, errors=errors, previews=previews)
    if action == "proof":
        return _send_proof(form)
    if action in ("send", "schedule"):
        return _confirm(form, action)
    if action == "confirm":
        return _create(form)
    if action == "edit":
        return _form_page(form)
    raise BadRequest("press Preview, Send proof, Send or Schedule")


def _defaults() -> Form:
    apps = _apps()
    wanted = _int_arg("app_id")
    app = apps.get(wanted) if wanted is not None else next(iter(apps.values()), None)
    if app is None:
        return MultiDict()
    form: Form = MultiDict([("app_id", str(app.id))])
    for part in sorted(p.platform for p in app.platforms):
        form.add("platforms", part)
    return form


def _form_page(
    form: Form,
    *,
    errors: dict[str, str] | None = None,
    previews: dict[str, Any] | None = None,
    proof: dict[str, Any] | None = None,
) -> tuple[str, int]:
    session = db()
    apps = _apps()
    audiences = sorted(session.scalars(domain_audiences.list_query()), key=lambda a: a.name.lower())
    page = render_template(
        "console/deliveries/new.html",
        form=form,
        errors=errors or {},
        apps=apps,
        app=apps.get(_form_app_id(form) or 0),
        audiences=audiences,
        devices=test_devices.by_app(session),
        targets=compose.TARGETS,
        previews=previews,
        largest=_largest(previews),
        limit=payloads.MAX_PAYLOAD_BYTES,
        proof=proof,
    )
    return page, 400 if errors else 200


def _form_app_id(form: Form) -> int | None:
    return compose.positive_id(form.get("app_id"))


def _largest(previews: dict[str, Any] | None) -> dict[str, Any] | None:
    if not previews:
        return None
    platform = max(previews, key=lambda p: previews[p]["size"])
    return {"platform": platform, "size": previews[platform]["size"]}


def _previews(form: Form) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """``deliveries.preview`` of the form's message (as ``POST /api/v1/deliveries/preview``)."""
    try:
        data = compose.preview_input(form)
        return deliveries.preview(db(), data, payloads=payloads), {}
    except FormErrors as exc:
        return None, exc.errors
    except ClientError as exc:
        return None, compose.errors_of(exc)


@bp.post("/preview")
@access.requires("marketer")
def preview() -> tuple[Response, int]:
    """The live check of the page's script: rendered fields, sizes, and the mock-ups' HTML."""
    form: Form = request.form
    previews, errors = _previews(form)
    if errors:
        first = next(iter(errors.values()))
        return jsonify({"error": "invalid_message", "message": first, "errors": errors}), 400
    assert previews is not None
    app = _apps().get(_form_app_id(form) or 0)
    html = render_template("console/deliveries/_previews.html", previews=previews, app=app)
    body = {
        "platforms": previews,
        "largest": _largest(previews),
        "limit": payloads.MAX_PAYLOAD_BYTES,
        "errors": {},
        "html": html,
    }
    return jsonify(body), 200


def _wants_json() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def _wake_worker(delivery_id: int) -> None:
    delivery_created(current_app, delivery_id)  # sent now rather than at the next poll


def _send_proof(form: Form) -> Response | tuple[str, int] | tuple[Response, int]:
    session = db()
    app_id = _form_app_id(form)
    allowed = test_devices.subscription_ids(session, app_id) if app_id else set()
    try:
        data = compose.create_input(form, "proof", test_devices=allowed, now=utcnow())
        sent, _ = deliveries.create_delivery(session, data, payloads=payloads, created_by=access.actor(), proof=True)
    except (FormErrors, ClientError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else compose.errors_of(exc)
        if _wants_json():
            return jsonify({"error": "invalid_form", "message": next(iter(errors.values())), "errors": errors}), 400
        return _form_page(form, errors=errors)
    session.commit()
    _wake_worker(sent.id)
    outcome = proof_context(sent)
    if _wants_json():
        html = render_template("console/deliveries/_proof.html", proof=outcome)
        return jsonify({"id": sent.id, "url": outcome["url"], "html": html}), 200
    return _form_page(form, proof=outcome)


def proof_context(proof: Delivery) -> dict[str, Any]:
    """What the proof outcome shows: each device's message, and whether it is still moving."""
    outcomes = test_devices.proof_outcome(db(), proof)
    done = proof.status in FINAL or (bool(outcomes) and all(o.status != "Pending" for o in outcomes))
    return {
        "delivery": proof,
        "outcomes": outcomes,
        "done": done,
        "url": url_for("console.deliveries.proof", delivery_id=proof.id),
    }


@bp.get("/proofs/<int:delivery_id>")
@access.requires("viewer")
def proof(delivery_id: int) -> str:
    """A proof's outcome: the page, or (``?fragment=1``, what the page's script polls) its table."""
    found = deliveries.get_delivery(db(), delivery_id)
    if not found.proof:
        raise NotFound(f"delivery {delivery_id} is not a proof")
    outcome = proof_context(found)
    template = "_proof.html" if request.args.get("fragment") == "1" else "proof.html"
    return render_template(f"console/deliveries/{template}", proof=outcome)


def _creation(form: Form, kind: str, key: str | None = None) -> deliveries.DeliveryCreate:
    """The delivery the form describes, its message checked as creation checks it."""
    app_id = _form_app_id(form)
    allowed = test_devices.subscription_ids(db(), app_id) if app_id else set()
    data = compose.create_input(
        form, "schedule" if kind == "schedule" else "send", test_devices=allowed, now=utcnow(), idempotency_key=key
    )
    try:
        payloads.check_size(compile_message(data.message, data.platforms or ["ios", "android"]))
    except Unsendable as exc:  # as create_delivery refuses it, but before the confirmation
        raise BadRequest(str(exc), code="invalid_message") from None
    return data


def _confirm(form: Form, kind: str) -> tuple[str, int]:
    session = db()
    try:
        data = _creation(form, kind)
        reach = analysis.reach(session, data.app_id, data.target.stored(), list(data.platforms or []))
    except FormErrors as exc:
        return _form_page(form, errors=exc.errors)
    except ClientError as exc:
        return _form_page(form, errors=compose.errors_of(exc))
    page = render_template(
        "console/deliveries/confirm.html",
        kind=kind,
        data=data,
        app=_apps().get(data.app_id),
        reach=reach,
        total=sum(reach.values()),
        target=_target_summary(data.target.stored(), delivery_lists.audience_names(session, _audience(data))),
        hidden=compose.hidden_fields(form),
        idempotency_key=f"console-{uuid.uuid4().hex}",
    )
    return page, 200


def _audience(data: deliveries.DeliveryCreate) -> list[int]:
    return [data.target.audience] if data.target.audience is not None else []


def _create(form: Form) -> Response | tuple[str, int]:
    session = db()
    kind = "schedule" if form.get("kind") == "schedule" else "send"
    key = form.get("idempotency_key", "")
    try:
        data = _creation(form, kind, key if _KEY.match(key) else None)
        delivery, created = deliveries.create_delivery(session, data, payloads=payloads, created_by=access.actor())
    except FormErrors as exc:
        session.rollback()
        return _form_page(form, errors=exc.errors)
    except ClientError as exc:
        session.rollback()
        return _form_page(form, errors=compose.errors_of(exc))
    session.commit()
    if created:
        _wake_worker(delivery.id)
        when = "scheduled" if data.schedule_at else "created and is being sent"
        flash(f"The delivery “{delivery.name}” is {when}.", "success")
    return redirect(url_for("console.reports.index", delivery_id=delivery.id), 303)

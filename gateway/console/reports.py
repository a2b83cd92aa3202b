"""Console: the report of one delivery, ``/console/deliveries/<id>``.

What it shows: the delivery (app, target, message, who created or cancelled it, its times), the
counts the API reports (:func:`domain.deliveries.counts`, through :func:`domain.reports.live`)
with the delivery, open and click rates, a chart of Sent and Opened over time, the failures
grouped by Campaign's failure type and reason, a broadLog search, and the broadLog as CSV.

While a delivery is scheduled or running, ``report.js`` polls ``<id>/counts`` (JSON) about once a
second and updates the page in place; without scripts the Refresh link does the same. Viewers
read; marketers may also **Cancel** a scheduled or running delivery (``POST <id>/cancel``, the
API's role for it), which a finished delivery refuses with 409.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.wrappers import Response as BaseResponse

from domain import apps, deliveries, reports
from domain.reports import LogSearch
from gateway.console import access, report_chart
from gateway.console.access import requires
from gateway.runtime import db, runtime
from gateway.spreadsheet import cell, download
from store.codes import Channel, FailureReason, FailureType, readable

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

bp = Blueprint("reports", __name__, url_prefix="/deliveries")

PAGE_SIZE = 50
CSV_CHUNK = 5000
#: The counts a report always shows, then those it shows only when some messages are in them.
COUNTS = (("targeted", "Targeted"), ("sent", "Sent"), ("failed", "Failed"))
TRACKED = (("received", "Received"), ("opened", "Opened"), ("clicked", "Clicked"))
OPTIONAL_COUNTS = (("pending", "Pending"), ("ignored", "Ignored"), ("cancelled", "Cancelled"))
RATES = (("delivery", "Delivery rate"), ("open", "Open rate"), ("click", "Click rate"))
CHANNELS = {int(Channel.IOS): "iOS", int(Channel.ANDROID): "Android"}
PLATFORMS = {"ios": "iOS", "android": "Android"}
MESSAGE_FIELDS = (
    ("title", "Title"),
    ("subtitle", "Subtitle"),
    ("body", "Body"),
    ("image_url", "Image"),
    ("deeplink", "Deep link"),
    ("sound", "Sound"),
    ("badge", "Badge"),
)
CSV_HEADER = (
    "id",
    "status",
    "channel",
    "token",
    "profile",
    "failure_type",
    "failure_type_code",
    "failure_reason",
    "failure_reason_code",
    "error_message",
    "provider_message_id",
    "attempts",
    "event_date",
)


def words(name: str | None) -> str:
    """Campaign's readable code name as the console shows it: ``user_unknown`` -> ``User unknown``."""
    return (name or "").replace("_", " ").capitalize()


def percent(rate: float | None) -> str:
    return "\u2014" if rate is None else f"{rate * 100:.1f}%"


def short_token(token: str | None) -> str:
    """The start and end of a long token (its whole text goes in a title)."""
    if token is None:
        return "\u2014"
    return token if len(token) <= 20 else f"{token[:10]}\u2026{token[-6:]}"


def _state(state: dict[str, Any]) -> dict[str, Any]:
    """:func:`domain.reports.live` with the texts the page shows."""
    return {
        **state,
        "status_label": state["status"].capitalize(),
        "rate_text": {name: percent(rate) for name, rate in state["rates"].items()},
        "progress_text": percent(state["progress"]),
    }


def _helpers() -> dict[str, Any]:
    return {
        "words": words,
        "short_token": short_token,
        "channels": CHANNELS,
        "count_names": COUNTS + TRACKED,
        "optional_counts": OPTIONAL_COUNTS,
        "rate_names": RATES,
        "status_options": [("", "Any status")] + [(name, words(name)) for name in LogSearch.STATUSES],
        "type_options": [("", "Any type")] + [(int(t), f"{words(readable(t))} ({int(t)})") for t in FailureType],
        "reason_options": [("", "Any reason")] + [(int(r), f"{words(readable(r))} ({int(r)})") for r in FailureReason],
        "order_options": [("newest", "Newest first"), ("id", "In id order")],
    }


@bp.get("/<int:delivery_id>")
@requires("viewer")
def index(delivery_id: int) -> str:
    session = db()
    delivery = deliveries.get_delivery(session, delivery_id)
    return render_template(
        "console/reports/report.html",
        title=f"{delivery.name} \u00b7 Delivery report",
        delivery=delivery,
        app=apps.get_app(session, delivery.app_id),
        target=reports.target_summary(session, delivery.target),
        platforms=", ".join(PLATFORMS.get(p, p) for p in delivery.platforms),
        message=[(label, delivery.message[name]) for name, label in MESSAGE_FIELDS if name in delivery.message],
        state=_state(reports.live(session, delivery)),
        chart=report_chart.layout(reports.sent_and_opened(session, delivery.id)),
        failures=reports.failure_groups(session, delivery.id),
        search=LogSearch(),
        errors={},
        **_helpers(),
    )


@bp.get("/<int:delivery_id>/counts")
@requires("viewer")
def counts(delivery_id: int) -> Response:
    """The live part of the report as JSON (what report.js polls)."""
    session = db()
    response = jsonify(_state(reports.live(session, deliveries.get_delivery(session, delivery_id))))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<int:delivery_id>/broadlogs")
@requires("viewer")
def broadlogs(delivery_id: int) -> tuple[str, int]:
    """The broadLog search: filters in the query string, keyset pages of PAGE_SIZE rows."""
    session = db()
    delivery = deliveries.get_delivery(session, delivery_id)
    values: dict[str, Any] = {
        name: value for name in LogSearch.model_fields if (value := request.args.get(name, "").strip())
    }
    errors: dict[str, str] = {}
    rows: list[reports.LogRow] = []
    next_after = None
    try:
        search = LogSearch.model_validate(values)
    except ValidationError as exc:
        errors = {str(e["loc"][0]): e["msg"] for e in exc.errors(include_url=False, include_input=False)}
        search = LogSearch.model_construct(**values)  # shown back as typed, never queried
    else:
        rows, next_after = reports.search(session, delivery.id, search, limit=PAGE_SIZE)
    kept = {name: value for name, value in values.items() if name != "after"}
    return render_template(
        "console/reports/broadlogs.html",
        title=f"broadLog \u00b7 {delivery.name}",
        delivery=delivery,
        search=search,
        errors=errors,
        rows=rows,
        unknown_profile=bool(search.profile and not errors and not reports.known_profile(session, search.profile)),
        next_url=url_for(".broadlogs", delivery_id=delivery.id, **kept, after=next_after) if next_after else None,
        first_url=url_for(".broadlogs", delivery_id=delivery.id, **kept) if values.get("after") else None,
        **_helpers(),
    ), 400 if errors else 200


@bp.get("/<int:delivery_id>/broadlog.csv")
@requires("viewer")
def broadlog_csv(delivery_id: int) -> Response:
    """Every broadLog row of the delivery in id order, streamed a chunk at a time."""
    deliveries.get_delivery(db(), delivery_id)
    return download(broadlog_lines(runtime().sessions, delivery_id), f"delivery-{delivery_id}-broadlog.csv")


def broadlog_lines(sessions: Callable[[], Session], delivery_id: int) -> Iterator[str]:
    """The delivery's broadLog as CSV text, read in a session of its own (the response streams
    after the view has returned). Text from outside (tokens, profile ids, provider errors) goes
    through :func:`gateway.spreadsheet.cell`, so a spreadsheet never runs it as a formula."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    with sessions() as session:
        for count, row in enumerate(reports.iter_broadlog(session, delivery_id, chunk=CSV_CHUNK), 1):
            writer.writerow(
                [
                    row.id,
                    row.status_name,
                    CHANNELS.get(row.channel, row.channel),
                    cell(row.address or ""),
                    cell(row.profile or ""),
                    row.type_name or "",
                    "" if row.failure_type is None else row.failure_type,
                    row.reason_name or "",
                    "" if row.failure_reason is None else row.failure_reason,
                    cell(row.error_message or ""),
                    cell(row.provider_message_id or ""),
                    row.attempts,
                    row.event_date.isoformat(),
                ]
            )
            if count % 1000 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


@bp.post("/<int:delivery_id>/cancel")
@requires("marketer")
def cancel(delivery_id: int) -> BaseResponse:
    """Cancel a scheduled or running delivery (a finished one: 409 page, nothing changed)."""
    session = db()
    delivery = deliveries.cancel(session, deliveries.get_delivery(session, delivery_id), cancelled_by=access.actor())
    session.commit()
    flash(f"Delivery \u201c{delivery.name}\u201d is cancelled: its pending messages will not be sent.", "success")
    return redirect(url_for(".index", delivery_id=delivery_id), 303)

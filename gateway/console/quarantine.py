"""Console: the quarantine (``/console/quarantine/``), the tokens ``GET /api/v1/quarantine`` lists.

Everyone signed in reads the list, filtered by app, status and platform, the latest entry first.
Releasing an entry needs the marketer role, as ``DELETE /api/v1/quarantine/{id}`` does, and calls
the same :func:`domain.quarantine.release`. Reading changes nothing (issue 14, item 8): a release
is a POST from the entry's Release button, never a side effect of a GET.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from domain import apps, quarantine
from domain.fields import ID_MAX
from gateway.console.access import current_user, requires, safe_next
from gateway.http import query_choice, query_int
from gateway.runtime import db
from store.codes import FailureReason

bp = Blueprint("quarantine", __name__, url_prefix="/quarantine")
log = logging.getLogger("pushgate.console")

PAGE_SIZE = 50
STATUS_LABELS = {
    quarantine.VALID: "Valid",
    quarantine.WITH_ERRORS: "With errors",
    quarantine.QUARANTINE: "Quarantine",
    quarantine.DENYLISTED: "Denylisted",
}
PLATFORM_LABELS = {"ios": "iOS", "android": "Android"}


def short_token(token: str) -> str:
    """The start and end of a push token (they run to 160+ characters); the page keeps the whole
    token in the cell's title."""
    return token if len(token) <= 24 else f"{token[:10]}…{token[-8:]}"


def reason_label(code: int | None) -> str:
    """Campaign's failure reason with its code: ``Unreachable (3)``."""
    if code is None:
        return "—"
    try:
        name = FailureReason(code).name.replace("_", " ").capitalize()
    except ValueError:
        return str(code)
    return f"{name} ({code})"


@bp.get("/")
@requires("viewer")
def index() -> str:
    session = db()
    app_id = query_int("app", 0, minimum=0, maximum=ID_MAX)
    status = query_choice("status", quarantine.STATUSES)
    platform = query_choice("platform", quarantine.PLATFORMS)
    before = query_int("before", 0, minimum=0, maximum=ID_MAX)
    entries, next_before = quarantine.newest_first(
        session,
        app_id=app_id or None,
        status=status,
        platform=platform,
        before=before or None,
        limit=PAGE_SIZE,
    )
    chosen: dict[str, Any] = {
        name: value for name, value in (("app", app_id), ("status", status), ("platform", platform)) if value
    }
    return render_template(
        "console/quarantine/index.html",
        title="Quarantine",
        entries=entries,
        app_names=apps.names(session),
        chosen=chosen,
        statuses=STATUS_LABELS,
        platforms=PLATFORM_LABELS,
        next_url=url_for(".index", **chosen, before=next_before) if next_before else None,
        first_url=url_for(".index", **chosen) if before else None,
        short_token=short_token,
        reason_label=reason_label,
    )


@bp.post("/<int:address_id>/release")
@requires("marketer")
def release(address_id: int) -> Response:
    session = db()
    address = quarantine.release(session, address_id)
    session.commit()
    user = current_user()
    log.info("quarantine entry %s released by console user %s", address_id, user.id if user else None)
    flash(
        f"Token {short_token(address.address)} released: its subscriptions are enabled again, "
        "and the next delivery tries it.",
        "success",
    )
    back = request.form.get("back", "")
    return redirect(back if safe_next(back) == back else url_for(".index"), 303)

"""Console: profiles (viewer reads). A search by external id, e-mail, ECID or push token, and a
profile's page: its fields and custom attributes, push consent, subscriptions (quarantined ones
marked), audiences and recent messages (:mod:`domain.profile_view`).

A profile's page is ``/console/profiles/<external id>``: Campaign ids may hold ``@``, slashes,
spaces or any letter, which the path carries percent-encoded. An id the path cannot carry intact
(an empty, ``.`` or ``..`` segment, which browsers and the router rewrite, or the word ``view``)
is linked as ``/console/profiles/view?external_id=...`` instead; :func:`profile_url` picks the form,
and every page links profiles through it.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request, url_for
from pydantic import ValidationError

from core.errors import BadRequest, NotFound
from domain import profile_view
from gateway.console.access import requires
from gateway.console.audiences import after_id
from gateway.runtime import db

bp = Blueprint("profiles", __name__, url_prefix="/profiles")

PAGE_SIZE = 50
#: The first path segment of the page that takes the external id as a query parameter.
BY_QUERY = "view"
CONSENT = {"y": "Yes", "n": "No", "u": "Unknown"}


@bp.app_template_global()
def profile_url(external_id: str) -> str:
    """The console page of the profile with ``external_id``, in the path whenever it survives
    there unchanged."""
    segments = external_id.split("/")
    if external_id == BY_QUERY or any(s in ("", ".", "..") for s in segments):
        return url_for("console.profiles.show_by_query", external_id=external_id)
    return url_for("console.profiles.show", external_id=external_id)


@bp.get("/")
@requires("viewer")
def index() -> str | tuple[str, int]:
    values = {name: request.args.get(name, "") for name in profile_view.ProfileSearch.model_fields}
    try:
        criteria = profile_view.ProfileSearch.model_validate(values)
    except ValidationError as exc:
        errors = {str(e["loc"][0]): e["msg"] for e in exc.errors(include_url=False, include_input=False)}
        page = render_template(
            "console/profiles/index.html", values=values, errors=errors, rows=None, next_url=None, first_url=None
        )
        return page, 400
    after = after_id()
    rows, next_after = profile_view.search(db(), criteria, after=after, limit=PAGE_SIZE)
    given = criteria.model_dump(exclude_none=True)
    return render_template(
        "console/profiles/index.html",
        values=values,
        errors={},
        searched=not criteria.empty,
        rows=rows,
        consent=CONSENT,
        next_url=url_for(".index", **given, after=next_after) if next_after else None,
        first_url=url_for(".index", **given) if after else None,
    )


@bp.get(f"/{BY_QUERY}")
@requires("viewer")
def show_by_query() -> str | tuple[str, int]:
    external_id = request.args.get("external_id")
    if not external_id:
        raise BadRequest("name the profile: ?external_id=...", code="invalid_external_id")
    return _show(external_id)


@bp.get("/<path:external_id>")
@requires("viewer")
def show(external_id: str) -> str | tuple[str, int]:
    return _show(external_id)


def _show(external_id: str) -> str | tuple[str, int]:
    try:
        page = profile_view.profile_page(db(), external_id)
    except NotFound:
        message = f"No profile has the external id “{external_id}”."
        return render_template("console/error.html", status=404, title="Unknown profile", message=message), 404
    return render_template(
        "console/profiles/show.html",
        page=page,
        profile=page.profile,
        consent=CONSENT,
        subscriptions_shown=profile_view.SUBSCRIPTIONS_SHOWN,
    )

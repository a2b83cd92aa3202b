"""The marketer console (``/console/``): server-rendered pages over the same domain functions as
the API, one child blueprint per area, every asset served from this package (no CDN).

Pages need a signed-in console user (:mod:`gateway.console.access`); each view states the least
role it needs. Errors render as pages, not JSON: a ClientError from a domain function shows its
message with its status, a missing CSRF token is a 400 page.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from core.errors import ClientError
from gateway.console import (
    access,
    apps,
    audiences,
    auth,
    deliveries,
    keys,
    profiles,
    quarantine,
    reports,
    sync,
)

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static")
for child in (
    auth.bp,
    deliveries.bp,
    reports.bp,
    audiences.bp,
    profiles.bp,
    apps.bp,
    quarantine.bp,
    sync.bp,
    keys.bp,
):
    bp.register_blueprint(child)

#: Pages load only what this package serves; images in a message preview may come from anywhere
#: over HTTPS, as they do on the phone.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


@bp.before_request
def _protect() -> None:
    access.protect()


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.app_context_processor
def _console_context() -> dict[str, object]:
    return {"console_user": access.current_user, "can": access.can}


@bp.errorhandler(CSRFError)
def _csrf_refused(exc: CSRFError) -> tuple[str, int]:
    return render_template(
        "console/error.html",
        status=400,
        title="Form refused",
        message="The form was not sent from a page of this console, or its session has ended "
        "(missing or wrong CSRF token). Reload the page and try again.",
    ), 400


@bp.errorhandler(ClientError)
def _client_error(exc: ClientError) -> tuple[str, int]:
    page = render_template("console/error.html", status=exc.status, title="Not possible", message=exc.message)
    return page, exc.status


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    return error_page(exc)


def error_page(exc: HTTPException) -> tuple[str, int]:
    """The console's page for an HTTP error, also for a path under /console/ that no view has
    (the app's handler sends those here: they belong to no blueprint)."""
    status = exc.code or 500
    return render_template("console/error.html", status=status, title=exc.name, message=exc.description), status


def install(app: Flask) -> None:
    """Register the console on ``app`` with its session cookies and CSRF protection."""
    access.install(app)
    app.register_blueprint(bp)

"""Console: keys (being built)."""

from __future__ import annotations

from flask import Blueprint, render_template

from gateway.console.access import requires

bp = Blueprint("keys", __name__, url_prefix="/api-keys")


@bp.get("/")
@requires("viewer")
def index() -> str:
    return render_template("console/placeholder.html", title="keys")

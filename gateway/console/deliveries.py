"""Console: deliveries (being built)."""

from __future__ import annotations

from flask import Blueprint, render_template

from gateway.console.access import requires

bp = Blueprint("deliveries", __name__, url_prefix="/deliveries")


@bp.get("/")
@requires("viewer")
def index() -> str:
    return render_template("console/placeholder.html", title="deliveries")

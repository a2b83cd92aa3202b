"""Console: reports (being built)."""

from __future__ import annotations

from flask import Blueprint, render_template

from gateway.console.access import requires

bp = Blueprint("reports", __name__, url_prefix="/deliveries")


@bp.get("/<int:delivery_id>")
@requires("viewer")
def index(delivery_id: int) -> str:
    return render_template("console/placeholder.html", title="reports")

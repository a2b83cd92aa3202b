"""(to be written)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("profiles", __name__)

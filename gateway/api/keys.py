"""(to be written)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("keys", __name__)

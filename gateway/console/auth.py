"""Console sign-in, sign-out and password change.

Sign-in attempts are counted per client address and per e-mail
(``PUSHGATE_RATE_LIMIT_SIGN_IN``, in memory or in Redis like the other limits): over either, the
page says when to try again (429) and no password is checked. A failed sign-in says only that the
e-mail or the password is wrong, never which.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from limits import RateLimitItem, parse_many
from werkzeug.wrappers import Response

from core.errors import BadRequest, ClientError
from domain import users
from gateway.console import access
from gateway.limits import client_address, window_counter
from gateway.runtime import db, runtime

bp = Blueprint("auth", __name__)
log = logging.getLogger("pushgate.console")
_EXTENSION = "pushgate_sign_in_limits"


class SignInLimits:
    """Fixed-window counts of sign-in attempts per client address and per e-mail."""

    def __init__(self, spec: str, storage_url: str) -> None:
        self.limits: list[RateLimitItem] = parse_many(spec) if spec else []
        self.counter = window_counter(storage_url)

    def wait(self, address: str, email: str) -> int:
        """Count one attempt; 0 when allowed, else the seconds until the next may be made."""
        who = ("addr", address), ("email", hashlib.sha256(email.encode()).hexdigest()[:32])
        for limit in self.limits:
            for scope, value in who:
                if not self.counter.hit(limit, "pushgate-sign-in", scope, value):
                    reset = self.counter.get_window_stats(limit, "pushgate-sign-in", scope, value).reset_time
                    return max(1, math.ceil(reset - time.time()))
        return 0


def _limits() -> SignInLimits:
    found: SignInLimits | None = current_app.extensions.get(_EXTENSION)
    if found is None:
        settings = runtime().settings
        found = SignInLimits(settings.rate_limit_sign_in, settings.redis_url)
        current_app.extensions[_EXTENSION] = found
    return found


@bp.get("/")
def home() -> Response:
    return redirect(url_for("console.deliveries.index"))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | str | tuple[str, int]:
    target = access.safe_next(request.values.get("next"))
    if request.method == "GET":
        if access.current_user() is not None:
            return redirect(target)
        return render_template("console/sign_in.html", next=target, email="", error=None)
    email = request.form.get("email", "").strip()[: users.EMAIL_MAX + 1]
    password = request.form.get("password", "")
    wait = _limits().wait(client_address(), email.lower())
    if wait:
        log.warning("console sign-in refused: too many attempts from %s", client_address())
        message = f"Too many sign-in attempts. Try again in {wait} seconds."
        return render_template("console/sign_in.html", next=target, email=email, error=message), 429
    session = db()
    user = users.authenticate(session, email, password) if email and password else None
    if user is None:
        session.rollback()
        return render_template(
            "console/sign_in.html", next=target, email=email, error="The e-mail or the password is wrong."
        ), 401
    session.commit()
    access.sign_in(user)
    log.info("console user %s signed in", user.id)
    return redirect(target)


@bp.post("/sign-out")
def sign_out() -> Response:
    access.sign_out()
    return redirect(url_for(".sign_in"))


@bp.route("/password", methods=["GET", "POST"])
@access.requires("viewer")
def password() -> str | tuple[str, int] | Response:
    if request.method == "GET":
        return render_template("console/password.html", error=None, done=False)
    user = access.current_user()
    assert user is not None  # requires() let the request in
    new, repeated = request.form.get("new_password", ""), request.form.get("repeat_password", "")
    try:
        if new != repeated:
            raise BadRequest("the new password and its repetition differ")
        users.change_password(db(), user, request.form.get("current_password", ""), new)
    except ClientError as exc:
        db().rollback()
        return render_template("console/password.html", error=exc.message, done=False), exc.status
    db().commit()
    access.sign_in(user)  # this session goes on with the new password; every other one ends
    return render_template("console/password.html", error=None, done=True)

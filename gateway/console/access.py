"""Who is signed in to the console, what their role lets them do, and the form protections.

A sign-in is kept in Flask's signed session cookie (HttpOnly, SameSite=Lax, Secure whenever the
request came over HTTPS, directly or through a trusted proxy): the user's id and a fingerprint of
their password hash, so that changing the password ends every other session. Every POST to the
console carries a CSRF token (Flask-WTF's, tied to the session) or is refused with 400. Roles
are the API keys' (viewer < marketer < admin); a view states the least it needs with
:func:`requires`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, Request, Response, abort, g, has_request_context, redirect, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask_wtf.csrf import CSRFProtect

from domain import users
from domain.keys import Role, role_allows
from gateway.runtime import db
from store.models import ConsoleUser

if TYPE_CHECKING:
    from itsdangerous import URLSafeTimedSerializer  # Flask's, the one its session interface builds

F = TypeVar("F", bound=Callable[..., Any])

#: What the session cookie's signing key is derived for (core.secrets.SecretBox.derive).
SESSION_PURPOSE = "console-session"
csrf = CSRFProtect()


class _SessionCookies(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request itself is HTTPS.

    Flask opens the session of every request, the SDK endpoints' and the API's too, and builds a
    new signing serializer each time (about 30 us, a tenth of a registration's own work); it
    depends only on the keys, so one is kept until they change."""

    def __init__(self) -> None:
        self._serializer: tuple[tuple[Any, ...], URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = self._serializer
        if cached is None or cached[0] != keys:
            cached = self._serializer = (keys, super().get_signing_serializer(app))
        return cached[1]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # Without a Cookie header there is nothing to read: werkzeug would still parse the
        # missing header into an empty cookie map for the look-up.
        if "HTTP_COOKIE" not in request.environ and self.get_signing_serializer(app) is not None:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        # An empty session nobody touched sets, deletes and varies nothing: Flask would still
        # work out every cookie attribute first.
        if not session and not session.accessed and not session.modified:
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        secure = super().get_cookie_secure(app)
        return secure or (has_request_context() and request.is_secure)


def install(app: Flask) -> None:
    """Session cookies and CSRF checks for the console (other surfaces use neither)."""
    app.secret_key = runtime_key(app)
    app.session_interface = _SessionCookies()
    app.config.update(
        SESSION_COOKIE_NAME="pushgate_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/console",
        PERMANENT_SESSION_LIFETIME=12 * 3600,
        # The console checks its own forms (protect() in its before_request): the API and the SDK
        # endpoints never carry a CSRF token and must not pay for looking for one.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as the session it belongs to
    )
    csrf.init_app(app)


def runtime_key(app: Flask) -> bytes:
    rt = app.extensions["pushgate"]
    key: bytes = rt.box.derive(SESSION_PURPOSE)
    return key


def protect() -> None:
    """Refuse a state-changing request without the session's CSRF token (400)."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


def current_user() -> ConsoleUser | None:
    """The signed-in user, or None (also when the user was deleted or changed password since)."""
    if "console_user" in g:
        cached: ConsoleUser | None = g.console_user
        return cached
    user = None
    user_id = session.get("uid")
    if isinstance(user_id, int):
        found = db().get(ConsoleUser, user_id)
        if found is not None and session.get("pv") == users.password_version(found):
            user = found
    g.console_user = user
    return user


def sign_in(user: ConsoleUser) -> None:
    session.clear()  # a new session id and CSRF token for the signed-in session
    session.permanent = True
    session["uid"], session["pv"] = user.id, users.password_version(user)
    g.console_user = user


def sign_out() -> None:
    session.clear()
    g.console_user = None


def actor() -> str:
    """How the signed-in user is recorded on what they create or cancel: their e-mail."""
    user = current_user()
    return user.email if user is not None else "unknown"


def can(role: Role) -> bool:
    """Whether the signed-in user holds ``role`` or higher (templates hide what they cannot do)."""
    user = current_user()
    return user is not None and role_allows(user.role, role)


def requires(role: Role) -> Callable[[F], F]:
    """Send a visitor who is not signed in to the sign-in page (and back afterwards); a user whose
    role is lower than ``role`` gets 403."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(url_for("console.auth.sign_in", next=_local_path(request)))
            if not role_allows(user.role, role):
                abort(403, f"this needs the {role} role; yours is {user.role}")
            return view(*args, **kwargs)

        wrapper.required_role = role  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _local_path(req: Request) -> str:
    return req.full_path.rstrip("?") if req.method == "GET" else url_for("console.deliveries.index")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.deliveries.index")

"""Request ids: one per request, in its log lines, its ``X-Request-ID`` answer header and its
error bodies.

An incoming ``X-Request-ID`` (a proxy's, such as nginx's ``$request_id``, or a client's) is kept
when it is 1 to 128 characters of ``A-Z a-z 0-9 . _ : + / = -``; otherwise the request gets a new
one, 32 hex characters. :class:`RequestIds` wraps the WSGI app outermost, so every answer carries
the header (the API's, the SDK endpoints', the console's, a 404 of no route) and every record
logged while the app handles the request carries ``request_id`` (:mod:`core.logs`). A streamed
body (a CSV download) is written after the app has returned: its records have no request id.

It is a few microseconds a request (a header look-up, a regex match or 16 random bytes, a
context variable set and reset, one header appended), on the registration path too.
"""

from __future__ import annotations

import os
import re
from typing import Any

from core import logs

HEADER = "X-Request-ID"
_SANE = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
_ENVIRON_KEY = "pushgate.request_id"


def request_id_of(environ: dict[str, Any]) -> str:
    """The id the request arrived with, when it is sane; else a new one."""
    given = environ.get("HTTP_X_REQUEST_ID")
    if given and _SANE.fullmatch(given):
        return str(given)
    return os.urandom(16).hex()


def current_request_id() -> str | None:
    """The id of the request being handled (None outside a request): for error bodies and pages."""
    value = logs.context().get("request_id")
    return None if value is None else str(value)


class RequestIds:
    """WSGI middleware: picks the request's id, keeps it in the log context and
    ``environ["pushgate.request_id"]`` while the app runs, and adds the answer's header."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request_id = environ[_ENVIRON_KEY] = request_id_of(environ)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append((HEADER, request_id))
            return start_response(status, headers, exc_info)

        token = logs.bind(request_id=request_id)
        try:
            return self.app(environ, start)
        finally:
            logs.unbind(token)

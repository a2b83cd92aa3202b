"""Adobe's HTTP answers translated into pushgate's errors, once, at this boundary.

::

    core.errors.ExternalError            (retry_after: seconds the Platform asked to wait, or None)
    ├── RetryableError                   429, 408, 5xx, timeouts, refused or dropped connections
    └── PermanentError                   401/403 (credentials, product profile), other 4xx

Messages are one line and name the call (``POST /data/foundation/import/batches``) and what
Adobe said: ``detail``/``title`` (Schema Registry, Catalog), ``message`` (streaming, Dataset
Service) or ``error_description`` (IMS). They never carry a token or a client secret: only
response bodies are quoted, and IMS never echoes the secret.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import httpx

from core.errors import ExternalError, PermanentError, RetryableError

#: Longest wait honoured from a Retry-After header; a longer one is cut to this.
MAX_RETRY_AFTER = 300.0
#: Characters of an Adobe error message kept in ours.
DETAIL_CHARS = 300


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds asked by ``Retry-After`` (delta-seconds or an HTTP date), capped; None when absent."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def describe(response: httpx.Response) -> str:
    """What Adobe said in an error body, on one line (empty when the body says nothing useful)."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = response.text.strip()
        return _one_line(text) if text and not text.startswith("<") else ""
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return ""
    for key in ("detail", "message", "error_description", "title", "error_message", "error"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return _one_line(value)
    return ""


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


def from_response(response: httpx.Response, call: str) -> ExternalError:
    """The error for a non-success answer to ``call``."""
    status = response.status_code
    said = describe(response)
    message = f"{call}: HTTP {status}" + (f": {said}" if said else "")
    if status in (408, 429) or status >= 500:
        return RetryableError(message, retry_after=retry_after(response))
    if status in (401, 403):
        return PermanentError(message + " (check the OAuth credentials and the API's product profile)")
    return PermanentError(message)


def from_transport(exc: httpx.TransportError, call: str) -> RetryableError:
    """The error for a call that got no answer (timeout, refused or dropped connection)."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else (str(exc) or type(exc).__name__)
    return RetryableError(f"{call}: {_one_line(kind)}")

"""Adobe's HTTP answers translated into pushgate's errors, once, at this boundary.

::

    core.errors.ExternalError            (retry_after: seconds the Platform asked to wait, or None)
    ├── RetryableError                   429, 408, 5xx, timeouts, refused or dropped connections
    └── PermanentError                   401/403 (credentials, product profile), other 4xx

Messages are one line and name the call (``POST /data/foundation/import/batches``) and what
Adobe said: ``detail``/``title`` (Schema Registry, Catalog), ``message`` (Dataset Service, a
message of a streaming 207), ``report.message`` (a streaming request the inlet refused) or
``error_description`` (IMS). They never carry a token or a client secret: only response bodies
are quoted, and IMS never echoes the secret.

:func:`judge` is the one place that says whether a failure the Platform reports for one record
is about that record (a rejected row) or about the set-up (the stream stops); :func:`refused`
adds what to fix to an ingestion request refused as a whole.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

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
    report = body.get("report")  # the Data Collection Core Service's problems (streaming)
    said = report.get("message") if isinstance(report, dict) else None
    for key in ("detail", "message", "error_description", "report", "title", "error_message", "error"):
        value = said if key == "report" else body.get(key)
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


# -- what a refusal is about --------------------------------------------------------------------

#: What to do when the dataset or schema the records name is not (or no longer) the Platform's.
PROVISION = "run `flask --app wsgi sync provision`, then export again"

#: The Data Collection Core Service's prefix of every streaming message: ``inletId: [...]
#: imsOrgId: [...]`` (it names the inlet and the organization whatever went wrong).
_DCCS_PREFIX = re.compile(r"^\s*inletId: \[[^\]]*\]\s*(?:imsOrgId: \[[^\]]*\]\s*)?", re.IGNORECASE)
#: What the Platform says about the content of one record: its XDM validation (``Message is
#: invalid``, ``N schema violations found``), a value Data Prep could not convert or validate
#: (``DCVS-…``, ``CNV-…`` codes), Profile's guardrails for that record.
_RECORD = re.compile(
    r"message is invalid|schema violations? found|would drop this record|\b(?:DCVS|CNV)-\d+", re.IGNORECASE
)
_CREDENTIALS = "check PUSHGATE_AEP_CLIENT_ID, PUSHGATE_AEP_CLIENT_SECRET and the API's product profile"
#: What names the set-up, and what to fix for it (the first match wins).
_SETUP_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"dataset|schema|xdm format|\bXDM-\d+", re.IGNORECASE),
        f"the dataset or schema is unknown to the Platform or not the stream's: {PROVISION}",
    ),
    (re.compile(r"ims ?org", re.IGNORECASE), "check PUSHGATE_AEP_ORG_ID"),
    (re.compile(r"\btoken\b|authoriz", re.IGNORECASE), _CREDENTIALS),
    (re.compile(r"inlet", re.IGNORECASE), "check PUSHGATE_AEP_INLET_ID (the streaming source's inlet id)"),
    (re.compile(r"sandbox", re.IGNORECASE), "check PUSHGATE_AEP_SANDBOX"),
)
_SETUP_DEFAULT = f"check the PUSHGATE_AEP_* settings; if the stream's dataset or schema is gone, {PROVISION}"


@dataclass(frozen=True)
class Verdict:
    """What a failure is about: ``transient`` (send it again), ``record`` (that record is wrong: a
    rejected row) or ``setup`` (the stream's set-up is wrong: the stream stops, with ``hint``)."""

    about: Literal["transient", "record", "setup"]
    hint: str = ""


def judge(status: int | None, message: str) -> Verdict:
    """What the failure of one record (a message the streaming batch endpoint's 207 marks failed,
    with its ``statusCode`` and ``message``) is about. The rule:

    - **transient**: no status, 408, 429 or 5xx. The message is sent again.
    - **record**: a 4xx whose message is about the record's own content -- its XDM validation
      (``Message is invalid``, ``N schema violations found``), a value the Platform could not
      convert or validate (``DCVS-…``, ``CNV-…``), a record Profile would drop. Only this makes a
      rejected row, and the watermark moves past it.
    - **setup**: every other 4xx, and any 401, 403 or 404: an unknown dataset, a schema that is
      not the dataset's (Adobe: ``Message has unknown xdm format``), a wrong IMS org, an unknown
      inlet or sandbox, credentials. Adobe checks each envelope's header, so it reports these per
      message, but every message of a stream carries the same header: the stream fails, its
      watermark stays, and ``hint`` says what to fix (``sync provision`` for a dataset or schema).

    Anything not known to be the record's fault is the set-up's: a record wrongly rejected is lost
    for good (the watermark moves past it), a stream wrongly stopped loses nothing and says why.
    A request refused as a whole (:func:`refused`) always stops the stream; it gets the same hint.
    """
    if status is None or status in (408, 429) or status >= 500:
        return Verdict("transient")
    text = _DCCS_PREFIX.sub("", message)
    if status not in (401, 403, 404) and _RECORD.search(text):
        return Verdict("record")
    if status in (401, 403):
        return Verdict("setup", _CREDENTIALS)
    return Verdict("setup", next((hint for pattern, hint in _SETUP_HINTS if pattern.search(text)), _SETUP_DEFAULT))


def refused(response: httpx.Response, call: str) -> ExternalError:
    """The error for an ingestion request refused as a whole: :func:`from_response`, and for a 4xx
    what to fix, as :func:`judge` says it for the set-up."""
    error = from_response(response, call)
    if not isinstance(error, PermanentError) or response.status_code in (401, 403):
        return error  # 401/403 already say to check the credentials
    return PermanentError(f"{error}; {judge(response.status_code, describe(response)).hint}")

"""Streaming ingestion through the batch endpoint: many XDM messages per request, under 1 MB.

Adobe's contract (experienceleague.adobe.com/docs/experience-platform/ingestion/tutorials/
streaming-multiple-messages.html): ``POST {streaming}/collection/batch/{inletId}`` with
``{"messages": [envelope, ...]}``; each envelope is ``{"header": {"schemaRef": {"id",
"contentType"}, "imsOrgId", "datasetId", "createdAt", "source": {"name"}}, "body": {"xdmMeta":
{"schemaRef"}, "xdmEntity": {...}}}``. The answer is 207 with ``responses``, one per message in
request order: ``{"xactionId"}`` when the message was taken, ``{"statusCode", "message"}`` when
it was not. A request above 1 MB gets 413; 429 means too many requests; 503 asks for at least
three retries with exponential back-off.

:class:`StreamingSender` sends one request's worth of messages and keeps at it: messages a 207
marks failed with 429 or 5xx (or with no result) are sent again, alone, and only them; a whole
request answered 429/5xx or lost in transit is sent again after ``Retry-After`` or an exponential
back-off with jitter, at most ``attempts`` times (tenacity). A message refused with a 4xx is final,
and :func:`sync.platform.errors.judge` says what it is about: the record itself (its XDM
validation) comes back in :attr:`RequestOutcome.refused`; anything else is the set-up's (unknown
dataset, a schema that is not the dataset's, wrong org, ...), which Adobe reports per message
although every message carries the same header: it comes back in :attr:`RequestOutcome.setup`,
with what to fix, and nothing is sent again. What still fails after the last attempt comes back in
:attr:`RequestOutcome.unresolved`, never silently dropped. A request refused as a whole (400,
401/403, 404 unknown inlet, 413) raises PermanentError naming what to fix.

A request lost in transit after the Platform took it is sent again: the Platform may then hold a
message twice, with the same ``_id``. That is the only way a message is sent twice.

:class:`Envelopes` serialises the constant part of every envelope once, and
:func:`fits`/:func:`request_body` pack serialised envelopes into requests whose exact size is
known before they are sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from core.errors import PermanentError, RetryableError
from sync.platform import errors
from sync.platform.client import Platform, WaitRetryAfter

#: Largest request body sent (Adobe answers 413 above 1 MB; 1,000,000 bytes is under either reading).
MAX_REQUEST_BYTES = 1_000_000
#: Attempts of one request (the first included).
ATTEMPTS = 8
#: The content type of a full XDM schema reference, major version 1.
XED_CONTENT_TYPE = "application/vnd.adobe.xed-full+json;version=1"

_OPEN = b'{"messages":['
_CLOSE = b"]}"
_FRAME = len(_OPEN) + len(_CLOSE)


def fits(current_bytes: int, count: int, message_bytes: int, limit: int = MAX_REQUEST_BYTES) -> bool:
    """Whether a message of ``message_bytes`` still fits a request holding ``count`` messages of
    ``current_bytes`` together (separators and the ``{"messages":[...]}`` frame counted)."""
    return _FRAME + current_bytes + count + message_bytes <= limit


def request_size(messages: Sequence[bytes]) -> int:
    return _FRAME + sum(len(m) for m in messages) + max(len(messages) - 1, 0)


def request_body(messages: Sequence[bytes]) -> bytes:
    return _OPEN + b",".join(messages) + _CLOSE


def dumps(value: Any) -> bytes:
    """Compact JSON as sent: ASCII with escapes, no spaces."""
    return json.dumps(value, separators=(",", ":")).encode("ascii")


class Envelopes:
    """The streaming envelope of one dataset's records; the header is serialised once."""

    def __init__(self, *, schema_id: str, dataset_id: str, org_id: str, source: str = "pushgate") -> None:
        ref = {"id": schema_id, "contentType": XED_CONTENT_TYPE}
        header = {
            "schemaRef": ref,
            "imsOrgId": org_id,
            "datasetId": dataset_id,
            "createdAt": int(time.time() * 1000),
            "source": {"name": source},
        }
        self._prefix = b'{"header":' + dumps(header) + b',"body":{"xdmMeta":' + dumps({"schemaRef": ref})
        self._prefix += b',"xdmEntity":'

    def wrap(self, record: bytes) -> bytes:
        """The envelope of one serialised XDM record."""
        return self._prefix + record + b"}}"


@dataclass
class RequestOutcome:
    """What became of one request's messages (indexes into the list given to :meth:`send`)."""

    accepted: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  # final: the record is wrong
    setup: dict[int, str] = field(default_factory=dict)  # final: the set-up is wrong (what to fix)
    unresolved: dict[int, str] = field(default_factory=dict)  # still failing after the last attempt
    retried: int = 0  # messages sent again
    attempts: int = 0  # requests made


class _StillFailing(RetryableError):
    """Some messages of a 207 answer failed with a retryable status."""


class StreamingSender:
    """Sends XDM envelopes to one streaming inlet."""

    def __init__(self, platform: Platform, inlet_id: str, *, attempts: int = ATTEMPTS) -> None:
        self.platform = platform
        self.url = platform.streaming(f"/collection/batch/{inlet_id}")
        self.call = "POST /collection/batch/{inlet}"
        self.attempts = attempts

    def send(self, messages: Sequence[bytes]) -> RequestOutcome:
        """Send ``messages`` (one request's worth, see :func:`fits`) until each is taken or refused,
        or ``attempts`` requests have been made, or a message is refused for the set-up (then the
        messages still to send again come back unresolved). Raises PermanentError when the request
        itself is refused (400, 401/403, 404 unknown inlet, 413)."""
        if request_size(messages) > MAX_REQUEST_BYTES:
            raise ValueError(f"{request_size(messages)} bytes do not fit one streaming request")
        result = RequestOutcome()
        pending = list(range(len(messages)))
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=WaitRetryAfter(),
            retry=retry_if_exception_type(RetryableError),
            sleep=self.platform.sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if result.attempts:
                        result.retried += len(pending)
                    result.attempts += 1
                    self._attempt(messages, pending, result)
        except RetryableError as exc:
            reason = str(exc)
            result.unresolved.update(dict.fromkeys(pending, reason))
        return result

    def _attempt(self, messages: Sequence[bytes], pending: list[int], result: RequestOutcome) -> None:
        """One request with the ``pending`` messages; leaves in ``pending`` those to send again
        (and then raises _StillFailing)."""
        response = self.platform.request(
            "POST",
            self.url,
            content=request_body([messages[i] for i in pending]),
            headers={"Content-Type": "application/json"},
            ok=(200, 207, 400, 404),
            call=self.call,
        )
        if response.status_code in (400, 404):  # refused as a whole: say what to fix
            raise errors.refused(response, self.call)
        try:
            answers = response.json()["responses"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentError(f"{self.call}: HTTP {response.status_code} without a responses list") from exc
        if not isinstance(answers, list) or len(answers) != len(pending):
            raise PermanentError(f"{self.call}: {len(answers)} results for {len(pending)} messages")
        still: list[int] = []
        last = ""
        for index, answer in zip(pending, answers, strict=True):
            status = _status(answer.get("statusCode")) if isinstance(answer, dict) else None
            if isinstance(answer, dict) and answer.get("xactionId") and (status is None or status < 300):
                result.accepted.append(index)
                continue
            said = " ".join(str(answer.get("message", "")).split())[: errors.DETAIL_CHARS] if answer else ""
            text = f"HTTP {status}" + (f": {said}" if said else "") if status else "no result for the message"
            verdict = errors.judge(status, said)
            if verdict.about == "transient":
                still.append(index)
                last = text
            elif verdict.about == "record":
                result.refused[index] = text
            else:
                result.setup[index] = f"{text}; {verdict.hint}"
        sent = len(pending)
        pending[:] = still
        if still and result.setup:  # the stream stops: sending these again cannot help it
            result.unresolved.update(dict.fromkeys(still, f"{self.call}: not sent again after a set-up error ({last})"))
            pending.clear()
        elif still:
            raise _StillFailing(
                f"{self.call}: {len(still)} of {sent} messages failed ({last})",
                retry_after=errors.retry_after(response),
            )


def _status(value: Any) -> int | None:
    """A message's ``statusCode`` as a number (Adobe sends a number; a string of digits is taken)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None

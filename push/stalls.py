"""What one batch's results say about whether each platform of a delivery can make progress.

A platform is *stalled* when a batch of it sent nothing and some of its messages were refused for
the app's credentials (``ErrorKind.AUTH``: none, undecryptable, refused by APNs, FCM or Google's
token endpoint): those errors are the app's, not the tokens', and every other message of the
platform will meet the same answer until someone fixes the credentials. It makes progress again
with the first message that goes out. :func:`verdicts` reads a batch's results; :func:`record`
writes them (:func:`domain.delivery_status.note_stall`, :func:`store.queries.deliveries.clear_stalls`)
and logs each change once, as one line.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from domain import delivery_status
from push.providers.base import ErrorKind, PushError
from push.providers.pool import CREDENTIAL_PROBLEMS
from store.queries import deliveries as delivery_rows

log = logging.getLogger("pushgate.engine")
SERVICE = {"ios": "APNs", "android": "FCM"}
#: A provider's reason code is printed only when it looks like one (a word, as APNs and FCM send).
_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def verdicts(outcomes: Iterable[tuple[str, PushError | None]]) -> dict[str, str | None]:
    """Per platform of ``(platform, error or None when sent)`` outcomes: None when a message of it
    went out (progress), the reason in words when it is stalled. A platform whose batch failed
    otherwise (bad tokens, throttling, ...) is left out: this batch says nothing about it."""
    sent: set[str] = set()
    refused: dict[str, Counter[PushError]] = {}
    for platform, error in outcomes:
        if error is None:
            sent.add(platform)
        elif error.kind is ErrorKind.AUTH:
            refused.setdefault(platform, Counter())[error] += 1
    found: dict[str, str | None] = dict.fromkeys(sent)
    for platform, errors in refused.items():
        if platform not in sent:
            found[platform] = reason(platform, errors.most_common(1)[0][0])
    return found


def reason(platform: str, error: PushError) -> str:
    """One line saying why ``platform``'s messages are refused, without the provider's free text
    (``/readyz`` shows it to anyone): pushgate's own words, or the service, HTTP status and code."""
    if error.reason in CREDENTIAL_PROBLEMS:
        return error.message
    code = error.reason if _CODE.match(error.reason) else "unknown reason"
    service = SERVICE.get(platform, platform)
    if error.status is None:  # not the service's answer: its OAuth token endpoint refused the grant
        return f"the OAuth token endpoint refused the app's {service} service account ({code})"
    return f"{service} refused the app's credentials ({error.status} {code})"


def code(error: PushError) -> str:
    """The error's reason code as a metric label: the provider's code, or ``other``."""
    return error.reason if _CODE.match(error.reason) else "other"


def record(session: Session, delivery_id: int, found: dict[str, str | None], now: datetime) -> bool:
    """Write one batch's :func:`verdicts`; True when the delivery's stalls changed (describe them
    then, in a transaction of its own: :func:`domain.delivery_status.describe_stalls`)."""
    going = [platform for platform, why in found.items() if why is None]
    cleared = delivery_rows.clear_stalls(session.connection(), delivery_id, going) if going else []
    for platform in cleared:
        log.info("delivery %s: %s messages are going out again", delivery_id, platform)
    changed = bool(cleared)
    for platform, why in found.items():
        if why is not None and delivery_status.note_stall(session, delivery_id, platform, why, now):
            log.warning(
                "delivery %s: %s messages cannot be sent: %s; retrying until their attempts run out or it expires",
                delivery_id,
                platform,
                why,
            )
            changed = True
    return changed

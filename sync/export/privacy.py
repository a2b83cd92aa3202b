"""Erased people out of the Platform: a Privacy Service delete job for each one erased here.

Erasing a profile (:mod:`domain.erasure`) queues a ``privacy_request`` row holding the person's
external id and e-mail, sealed with the instance's secret key. The ``logs`` job calls
:func:`send_erasures` once its streams are done: every pending row is opened, and the people are
sent in requests of up to :data:`BATCH` users, one request per regulation
(:mod:`sync.platform.privacy`; docs/protocols.md §6.8). Each user is keyed ``pushgate-<row id>``,
which names no one and matches the answer's job to its row.

**Recording.** The answer's job ids are written, with the time, in one transaction that also
clears the rows' identities (:func:`store.queries.privacy.mark_sent`): from then on nothing here
names the person. A request the Platform refuses, or that still fails after the retries, leaves
its rows pending with the reason in ``error``, for the next run; a request that could not reach
the Platform (429, 5xx, no answer) stops the step, later batches wait too. A crash between the
answer and the commit sends those people again next time: Adobe then holds two delete jobs for
them, which deletes nothing more.

**Never in clear.** The identities are opened only to build the request body. Reasons quote what
Adobe said, with every identity of the request masked (:func:`sync.platform.privacy.without`);
logs carry counts only.

Why after the streams: the Privacy Service deletes what the Platform holds when the job is
created; anything ingested later about the person may stay. Sending the jobs last makes any
record this run sent (read before the erasure committed) one the job covers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.config import Settings
from core.errors import ConfigError, ExternalError, RetryableError
from core.secrets import SecretBox, resolve_secret_key
from store.queries import privacy as queue
from store.types import utcnow
from sync.platform.client import Platform
from sync.platform.privacy import MAX_USERS, User, create_jobs, delete_body, user_ids, without
from sync.runs import FileOutcome, RunContext

log = logging.getLogger("pushgate.sync.export")

#: People of one job request (Adobe takes at most 1000).
BATCH = MAX_USERS
#: The name of the step's outcome in a run's summary.
NAME = "privacy"


def secret_box(settings: Settings) -> SecretBox:
    """The box the gateway sealed the identities with (the same ``PUSHGATE_SECRET_KEY``)."""
    return SecretBox(resolve_secret_key(settings.secret_key, settings.instance_path))


@dataclass
class Tally:
    read: int = 0
    sent: int = 0
    failed: int = 0
    requests: int = 0
    failure: str | None = None

    def fail(self, count: int, reason: str) -> None:
        self.failed += count
        self.failure = self.failure or reason


@dataclass(frozen=True)
class Person:
    row_id: int
    user: User
    names: tuple[str | None, ...]


def send_erasures(
    context: RunContext, platform: Platform, namespace: str, *, box: SecretBox | None = None
) -> FileOutcome | None:
    """Send a delete job for every pending erasure; None when there is none (no outcome)."""
    with context.sessions() as session:
        if not queue.count_pending(session):
            return None
    box = box or secret_box(context.settings)
    tally = Tally()
    after = 0
    while True:
        with context.sessions() as session:
            rows = queue.pending(session, after, BATCH)
        if not rows:
            break
        after = int(rows[-1].id)
        reachable = send_batch(context, platform, box, namespace, rows, tally)
        context.advance(len(rows))
        if not reachable:
            break
    with context.sessions() as session:
        left = queue.count_pending(session)
    log.info("sync logs: privacy: %s delete jobs sent, %s not sent, %s pending", tally.sent, tally.failed, left)
    reason = None
    if tally.failure:
        reason = f"{tally.failed} of {tally.read} delete jobs not sent ({tally.failure}); the next run sends them again"
    return FileOutcome(
        name=NAME,
        status="failed" if tally.failure else "applied",
        rows=tally.read,
        applied=tally.sent,
        reason=reason,
        details={"mode": "privacy service", "delete_jobs": tally.sent, "requests": tally.requests, "pending": left},
    )


def send_batch(
    context: RunContext, platform: Platform, box: SecretBox, namespace: str, rows: Sequence[Any], tally: Tally
) -> bool:
    """Send the people of ``rows``, one request per regulation; False when the Platform could not
    be reached (the step stops)."""
    groups: dict[str, list[Person]] = {}
    for row in rows:
        tally.read += 1
        person, problem = opened(box, namespace, row)
        if person is None:
            record_failure(context, [int(row.id)], problem)
            tally.fail(1, problem)
            continue
        groups.setdefault(row.regulation or "gdpr", []).append(person)
    for regulation, people in groups.items():
        tally.requests += 1
        body = delete_body(context.settings.aep_org_id, [person.user for person in people], regulation)
        try:
            jobs = create_jobs(platform, body)
        except ExternalError as exc:
            reason = without(str(exc), [name for person in people for name in person.names])
            record_failure(context, [person.row_id for person in people], reason)
            tally.fail(len(people), reason)
            if isinstance(exc, RetryableError):
                return False
            continue
        taken = {person.row_id: jobs[person.user.key] for person in people if person.user.key in jobs}
        missing = [person.row_id for person in people if person.user.key not in jobs]
        with context.sessions.begin() as session:
            tally.sent += queue.mark_sent(session, taken, utcnow())
            if missing:
                queue.mark_failed(session, missing, "the Platform's answer lists no delete job for it")
        if missing:
            tally.fail(len(missing), "the Platform's answer lists no delete job for some people")
    return True


def opened(box: SecretBox, namespace: str, row: Any) -> tuple[Person | None, str]:
    """The person of a pending row, or None and why it cannot be sent (naming no one)."""
    if row.identities is None:
        return None, "the row holds no identities"
    try:
        identities = box.open(bytes(row.identities))
    except ConfigError as exc:  # sealed under another PUSHGATE_SECRET_KEY
        return None, str(exc)
    external_id, email = identities.get("external_id"), identities.get("email")
    if not isinstance(external_id, str) or not external_id:
        return None, "the sealed identities have no external id"
    email = email if isinstance(email, str) and email else None
    ecids = [e for e in identities.get("ecids") or () if isinstance(e, str) and e]
    user = User(key=f"pushgate-{row.id}", ids=user_ids(namespace, external_id, email, ecids))
    return Person(int(row.id), user, (external_id, email)), ""


def record_failure(context: RunContext, row_ids: list[int], reason: str) -> None:
    with context.sessions.begin() as session:
        queue.mark_failed(session, row_ids, reason)

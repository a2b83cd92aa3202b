"""Privacy Service: delete jobs for erased people (docs/protocols.md §6.8).

Adobe's contract (experienceleague.adobe.com/en/docs/experience-platform/privacy/api/privacy-jobs,
.../privacy/api/appendix, .../profile/privacy, .../catalog/privacy):
``POST {platform}/data/core/privacy/jobs`` with the usual headers (``x-sandbox-name`` is ignored:
a job covers every sandbox of the organization) and::

    {"companyContexts": [{"namespace": "imsOrgID", "value": "<org id>"}],
     "users": [{"key": "<our key>", "action": ["delete"],
                "userIDs": [{"namespace": "CRMID", "value": "...", "type": "custom"}, ...]}],
     "include": ["profileService", "identity", "aepDataLake"],
     "expandIds": false, "priority": "normal", "regulation": "gdpr"}

At most 1000 users a request and nine identities a user. The answer lists one job per user and
action, ``{"jobs": [{"jobId", "customer": {"user": {"key", "action": ["delete"]}}}], ...}``: the
``key`` is how a job is matched to the user it was made for.

:func:`user_ids` gives each identity in the two forms the stores read: ``standard`` or ``custom``
(by namespace) for Profile and Identity Service, ``unregistered`` for the data lake.
:func:`delete_body` builds a request, :func:`create_jobs` sends it (retried on 429/5xx by
:meth:`Platform.retrying`) and returns the job id of each key. Nothing here touches the database
or logs an identity; an error's message may quote what Adobe said, which the caller must not store
as it is (:func:`without`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import PermanentError
from sync.platform.client import Platform

PATH = "/data/core/privacy/jobs"
#: Users of one job request at most (Adobe: 1000).
MAX_USERS = 1000
#: Identities of one user at most (Adobe: nine).
MAX_IDS = 9
#: Where the deletion applies: the Profile store, the identity graph and the data lake, all three
#: holding what the export sent (Adobe's ``include`` values).
PRODUCTS = ("profileService", "identity", "aepDataLake")
#: Adobe's standard identity namespaces (Privacy Service API appendix); any other is the
#: organization's own (``custom``), as the export's ``CRMID`` is.
STANDARD_NAMESPACES = frozenset({"AdCloud", "CORE", "ECID", "Email", "Phone", "TNTID", "IDFA", "GAID", "WAID"})
EMAIL_NAMESPACE = "Email"
ECID_NAMESPACE = "ECID"


@dataclass(frozen=True)
class User:
    """One person to delete: ``key`` names them in the answer without identifying them."""

    key: str
    ids: tuple[dict[str, str], ...]


def user_ids(
    namespace: str, external_id: str, email: str | None = None, ecids: Sequence[str] = ()
) -> tuple[dict[str, str], ...]:
    """The person's identities: the external id in ``namespace`` and, when known, the e-mail in
    ``Email``, each as Profile and Identity Service read it (``standard``/``custom``) and as the
    data lake reads it (``unregistered``); then the ECIDs of their devices (the exported
    trackingLog and subscription records are keyed by them), as ``standard`` ``ECID``, as many as
    the limit of ids a person may have leaves room for."""
    found: list[dict[str, str]] = []
    for space, value in ((namespace, external_id), (EMAIL_NAMESPACE, email)):
        if not value:
            continue
        kind = "standard" if space in STANDARD_NAMESPACES else "custom"
        found.append({"namespace": space, "value": value, "type": kind})
        found.append({"namespace": space, "value": value, "type": "unregistered"})
    found.extend({"namespace": ECID_NAMESPACE, "value": ecid, "type": "standard"} for ecid in ecids)
    return tuple(found[:MAX_IDS])


def delete_body(org_id: str, users: Sequence[User], regulation: str) -> dict[str, Any]:
    """The request creating one delete job per user of ``users`` (1 to :data:`MAX_USERS`)."""
    if not 1 <= len(users) <= MAX_USERS:
        raise ValueError(f"a job request names 1 to {MAX_USERS} users, not {len(users)}")
    return {
        "companyContexts": [{"namespace": "imsOrgID", "value": org_id}],
        "users": [{"key": user.key, "action": ["delete"], "userIDs": list(user.ids)} for user in users],
        "include": list(PRODUCTS),
        "expandIds": False,
        "priority": "normal",
        "regulation": regulation,
    }


def create_jobs(platform: Platform, body: Mapping[str, Any]) -> dict[str, str]:
    """Send ``body``; returns the delete job id of each user key the answer lists (a key the
    answer leaves out has no job). Raises the translated error when the request is refused."""

    def send() -> Any:
        response = platform.request("POST", platform.api(PATH), json=body, ok=(200, 201, 202))
        try:
            return response.json()
        except ValueError:
            raise PermanentError(f"POST {PATH}: HTTP {response.status_code}: the answer is not JSON") from None

    answer = platform.retrying(send)
    jobs = answer.get("jobs") if isinstance(answer, dict) else None
    if not isinstance(jobs, list):
        raise PermanentError(f"POST {PATH}: the answer lists no jobs")
    found: dict[str, str] = {}
    for job in jobs:
        customer = job.get("customer") if isinstance(job, dict) else None
        user = customer.get("user") if isinstance(customer, dict) else None
        if not isinstance(user, dict):
            continue
        key, job_id, actions = user.get("key"), job.get("jobId"), user.get("action") or ["delete"]
        if isinstance(key, str) and isinstance(job_id, str) and "delete" in actions:
            found.setdefault(key, job_id)
    return found


def without(message: str, values: Iterable[str | None], mask: str = "(identity)") -> str:
    """``message`` with every one of ``values`` replaced by ``mask`` (case-insensitively), so that
    what Adobe quoted back of a request never ends up stored or logged. Where Adobe's text was cut
    short (``…``), the start of a value it was cut in goes too."""
    ordered = sorted({v for v in values if v}, key=len, reverse=True)
    for value in ordered:
        message = re.sub(re.escape(value), mask, message, flags=re.IGNORECASE)
    parts = message.split("…")
    for index in range(len(parts) - 1):
        for value in ordered:
            text = parts[index]
            cut = next((n for n in range(len(value) - 1, 2, -1) if text.lower().endswith(value[:n].lower())), 0)
            if cut:
                parts[index] = text[:-cut] + mask
    return "…".join(parts)

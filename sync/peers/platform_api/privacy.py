"""Privacy Service: create access and delete jobs, list them, look one up.

Adobe's contract (experienceleague.adobe.com/en/docs/experience-platform/privacy/api/privacy-jobs
and .../privacy/api/appendix): ``POST /data/core/privacy/jobs`` with ``companyContexts`` (one of
namespace ``imsOrgID`` naming the organization), ``users`` (1 to 1000, each with a ``key``, an
``action`` list of ``access``/``delete`` and 1 to 9 ``userIDs`` of ``namespace``, ``value`` and a
qualifier ``type``), ``include`` (the products, never empty; case does not matter),
``regulation``, and optional ``expandIds``, ``priority`` (``normal``/``low``), ``mergePolicyId``.
The answer lists one job per user and action: ``{"jobs": [{"jobId", "customer": {"user": {"key",
"action": [action]}}}], "requestStatus": 1, "totalRecords": n}``. ``GET /jobs?regulation=``
(``page`` from 0, ``size`` 100 by default, at most 1000) and ``GET /jobs/{jobId}`` (``jobId``,
``userKey``, ``action``, ``status``, ``userIds``, dates as ``10/02/2019 08:25 PM GMT``, ...).
The Privacy Service works across the organization's sandboxes and ignores ``x-sandbox-name``.

Not documented, so the peer's own choice: the status of a created request (200), the shape of a
list (``{"items": [...], "page", "size", "totalRecords"}``) and of a refused request (the
Platform's problem shape, ``detail`` saying what is wrong). Jobs stay ``processing``.
"""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from sync.peers.platform_api.state import PeerState, bad_request, json_body, json_response

MAX_USERS = 1000
MAX_IDS = 9
ACTIONS = frozenset({"access", "delete"})
#: Namespace qualifiers (``type`` of a user id).
QUALIFIERS = frozenset({"standard", "custom", "integrationCode", "namespaceId", "unregistered", "analytics", "target"})
#: ``include`` values, compared without case.
PRODUCTS = frozenset(
    value.lower()
    for value in (
        "analytics",
        "audienceManager",
        "adCloud",
        "profileService",
        "aepDataLake",
        "campaign",
        "target",
        "CRS",
        "cjm",
        "marketo",
        "identity",
        "marketomeasure",
        "commerceMarketingData",
        "AdobeCloudPlatform",
    )
)
REGULATIONS = frozenset(
    {
        "apa_aus",
        "ccpa",
        "cpa_co_usa",
        "cpra_ca_usa",
        "ctdpa_ct_usa",
        "dpdpa_de_usa",
        "fdbr_fl_usa",
        "gdpr",
        "hipaa_usa",
        "icdpa_ia_usa",
        "lgpd_bra",
        "mcdpa_mn_usa",
        "mcdpa_mt_usa",
        "mhmda_wa_usa",
        "ndpa_ne_usa",
        "nhpa_nh_usa",
        "njdpa_nj_usa",
        "nzpa_nzl",
        "ocpa_or_usa",
        "pdpa_tha",
        "ql25_qc_can",
        "tdpsa_tx_usa",
        "tipa_tn_usa",
        "ucpa_ut_usa",
        "vcdpa_va_usa",
    }
)


def privacy_create(state: PeerState, request: Request) -> Response:
    """Create one job per user and action of the request."""
    state.check_platform(request, sandbox=False)
    body = json_body(request)
    problem = request_problem(state, body)
    if problem:
        raise bad_request(problem)
    request_id = f"{state.now_ms()}{uuid.uuid4().hex[:6].upper()}"
    when = _date(state.now())
    created = []
    for user in body["users"]:
        for action in user["action"]:
            job_id = str(uuid.uuid4())
            state.privacy_jobs[job_id] = {
                "jobId": job_id,
                "requestId": request_id,
                "userKey": user["key"],
                "action": action,
                "status": "processing",
                "regulation": body["regulation"],
                "submittedBy": state.config.client_id,
                "createdDate": when,
                "lastModifiedDate": when,
                "userIds": copy.deepcopy(user["userIDs"]),
                "include": list(body["include"]),
                "companyContexts": copy.deepcopy(body["companyContexts"]),
            }
            created.append({"jobId": job_id, "customer": {"user": {"key": user["key"], "action": [action]}}})
    return json_response({"jobs": created, "requestStatus": 1, "totalRecords": len(created)})


def privacy_list(state: PeerState, request: Request) -> Response:
    """The jobs of one regulation, a page at a time."""
    state.check_platform(request, sandbox=False)
    regulation = request.args.get("regulation", "")
    if regulation not in REGULATIONS:
        raise bad_request("regulation must be one of " + ", ".join(sorted(REGULATIONS)))
    try:
        page = int(request.args.get("page", 0))
        size = int(request.args.get("size", 100))
    except ValueError:
        raise bad_request("page and size must be integers") from None
    if page < 0 or not 1 <= size <= 1000:
        raise bad_request("page starts at 0; size is between 1 and 1000")
    jobs = [job for job in state.privacy_jobs.values() if job["regulation"] == regulation]
    items = copy.deepcopy(jobs[page * size : (page + 1) * size])
    return json_response({"items": items, "page": page, "size": size, "totalRecords": len(jobs)})


def privacy_one(state: PeerState, request: Request, job_id: str) -> Response:
    state.check_platform(request, sandbox=False)
    job = state.privacy_jobs.get(job_id)
    if job is None:
        raise bad_request(f"Job {job_id} is not found", 404, "NotFoundError")
    return json_response(copy.deepcopy(job))


def request_problem(state: PeerState, body: Any) -> str | None:
    """What is wrong with a job request, or None."""
    if not isinstance(body, dict):
        return "the body is a JSON object"
    return (
        _contexts_problem(state, body.get("companyContexts"))
        or _users_problem(body.get("users"))
        or _options_problem(body)
    )


def _contexts_problem(state: PeerState, contexts: Any) -> str | None:
    if not isinstance(contexts, list) or not all(isinstance(c, dict) for c in contexts):
        return "companyContexts is required: a list of {namespace, value}"
    orgs = [c.get("value") for c in contexts if str(c.get("namespace", "")).lower() == "imsorgid"]
    if not orgs:
        return "companyContexts needs one identifier of namespace imsOrgID"
    if state.config.org_id not in orgs:
        return f"companyContexts: imsOrgID {orgs[0]} is not the organization of the request"
    return None


def _users_problem(users: Any) -> str | None:
    if not isinstance(users, list) or not 1 <= len(users) <= MAX_USERS:
        return f"users is required: a list of 1 to {MAX_USERS} users"
    for index, user in enumerate(users):
        problem = _user_problem(user)
        if problem:
            return f"users[{index}]: {problem}"
    keys = [user["key"] for user in users]
    if len(set(keys)) != len(keys):
        return "users: each key names one user"
    return None


def _user_problem(user: Any) -> str | None:
    if not isinstance(user, dict):
        return "a user is an object"
    key = user.get("key")
    if not isinstance(key, str) or not key.strip():
        return "key is required"
    actions = user.get("action")
    if not isinstance(actions, list) or not actions or not set(actions) <= ACTIONS:
        return "action is a list of access and/or delete"
    ids = user.get("userIDs")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_IDS:
        return f"userIDs is a list of 1 to {MAX_IDS} identities"
    return next((f"userIDs[{n}]: {p}" for n, identity in enumerate(ids) if (p := _id_problem(identity))), None)


def _id_problem(identity: Any) -> str | None:
    if not isinstance(identity, dict):
        return "an identity is an object"
    namespace, value, kind = identity.get("namespace"), identity.get("value"), identity.get("type")
    if not isinstance(namespace, str | int) or isinstance(namespace, bool) or not str(namespace).strip():
        return "namespace is required"
    if not isinstance(value, str) or not value.strip():
        return "value is required"
    if kind not in QUALIFIERS:
        return "type must be one of " + ", ".join(sorted(QUALIFIERS))
    return None


def _options_problem(body: dict[str, Any]) -> str | None:
    include = body.get("include")
    if not isinstance(include, list) or not include:
        return "include is required: the products to process"
    unknown = [p for p in include if not isinstance(p, str) or p.lower() not in PRODUCTS]
    if unknown:
        return f"include: unknown product {unknown[0]!r}"
    if body.get("regulation") not in REGULATIONS:
        return "regulation must be one of " + ", ".join(sorted(REGULATIONS))
    if not isinstance(body.get("expandIds", False), bool):
        return "expandIds is true or false"
    if body.get("priority", "normal") not in ("normal", "low"):
        return "priority is normal or low"
    return None


def _date(moment: float) -> str:
    """Adobe's dates in job details: ``10/02/2019 08:25 PM GMT``."""
    return time.strftime("%m/%d/%Y %I:%M %p GMT", time.gmtime(moment))

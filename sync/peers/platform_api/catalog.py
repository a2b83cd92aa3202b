"""Catalog Service (datasets, batches) and the Dataset Service's data usage labels."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from werkzeug.wrappers import Request, Response

from sync.peers.platform_api.batch import batch_view
from sync.peers.platform_api.state import (
    XED_CONTENT_TYPE,
    PeerState,
    bad_request,
    dataset_or_404,
    hex_id,
    json_body,
    json_response,
    matches_property,
    profile_enabled,
)

_RESERVED = {
    "limit",
    "start",
    "properties",
    "property",
    "orderBy",
    "tags",
    "requestDataSource",
    "sort",
    "dataSet",
    "createdAfter",
    "createdBefore",
}


def _catalog_view(objects: Mapping[str, dict[str, Any]], request: Request, default_limit: int = 20) -> Response:
    items = list(objects.items())
    for key, raw in request.args.items(multi=True):
        if key in _RESERVED:
            continue
        negate = raw.startswith("!")
        wanted = raw.removeprefix("!").split(",")
        items = [(i, o) for i, o in items if (str(o.get(key, "")) in wanted) != negate]
    for condition in request.args.getlist("property"):
        items = [(i, o) for i, o in items if matches_property(o, condition)]
    after, before = request.args.get("createdAfter", ""), request.args.get("createdBefore", "")
    if after.isdigit():
        items = [(i, o) for i, o in items if int(o.get("created", 0)) > int(after)]
    if before.isdigit():
        items = [(i, o) for i, o in items if int(o.get("created", 0)) < int(before)]
    for tag_filter in (request.args.get("tags") or "").split(","):
        if tag_filter:
            name, _, pattern = tag_filter.partition(":")
            regex = re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$")
            items = [(i, o) for i, o in items if any(regex.match(v) for v in (o.get("tags") or {}).get(name, []))]
    order = request.args.get("orderBy") or request.args.get("sort")
    if order:
        for part in reversed(order.split(",")):
            direction, _, prop = part.rpartition(":")
            items.sort(key=lambda pair: str(pair[1].get(prop, "")), reverse=direction == "desc")
    try:
        limit = int(request.args.get("limit", default_limit))
        start = int(request.args.get("start", 0))
    except ValueError:
        raise bad_request("limit and start must be integers") from None
    if not 1 <= limit <= 100:
        raise bad_request("limit must be between 1 and 100")
    items = items[start : start + limit]
    properties = [p for p in (request.args.get("properties") or "").split(",") if p]
    if properties:
        return json_response({i: {p: o[p] for p in properties if p in o} for i, o in items})
    return json_response(dict(items))


def _schema_ref(state: PeerState, body: Mapping[str, Any]) -> dict[str, Any]:
    ref = body.get("schemaRef")
    if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
        raise bad_request("A dataset needs schemaRef.id, the $id of its XDM schema")
    if ref["id"] not in state.schemas:
        raise bad_request(f"Schema {ref['id']} is not found in the Schema Registry")
    if not XED_CONTENT_TYPE.match(str(ref.get("contentType", ""))):
        raise bad_request("schemaRef.contentType must look like application/vnd.adobe.xed-full+json;version=1")
    return ref


def _check_profile_tag(state: PeerState, dataset: Mapping[str, Any]) -> None:
    if profile_enabled(dataset):
        schema = state.schemas[(dataset.get("schemaRef") or {})["id"]]
        if "union" not in (schema.get("meta:immutableTags") or []):
            raise bad_request("To enable profile datasets the schema should be valid")


def _check_tags(tags: Any) -> dict[str, list[str]]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in tags.values()
    ):
        raise bad_request('tags is an object of arrays of strings, such as {"unifiedProfile": ["enabled:true"]}')
    return tags


def datasets_create(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    body = json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
        raise bad_request("A dataset needs a name")
    schema_ref = _schema_ref(state, body)
    dataset_id = hex_id(24)
    now = state.now_ms()
    dataset = {
        **{k: v for k, v in body.items() if k not in ("id",)},
        "tags": _check_tags(body.get("tags")),
        "schemaRef": schema_ref,
        "imsOrg": state.config.org_id,
        "created": now,
        "updated": now,
        "createdClient": state.config.client_id,
        "createdUser": f"{state.config.client_id}@techacct.adobe.com",
        "updatedUser": f"{state.config.client_id}@techacct.adobe.com",
        "version": "1.0.0",
        "state": "DRAFT",
        "dule": {},
        "statsCache": {},
        "files": f"@/dataSetFiles?dataSetId={dataset_id}",
    }
    _check_profile_tag(state, dataset)
    state.datasets[dataset_id] = dataset
    state.records.setdefault(dataset_id, [])
    return json_response([f"@/dataSets/{dataset_id}"], 201)


def datasets_list(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    return _catalog_view(state.datasets, request)


def datasets_one(state: PeerState, request: Request, dataset_id: str) -> Response:
    state.check_platform(request)
    dataset = dataset_or_404(state, dataset_id)
    if request.method == "GET":
        return _catalog_view({dataset_id: dataset}, request)
    if request.method == "DELETE":
        del state.datasets[dataset_id]
        return json_response([f"@/dataSets/{dataset_id}"])
    body = json_body(request)
    if not isinstance(body, dict):
        raise bad_request("A PATCH body is an object of the properties to change")
    changed = {**dataset, **body, "updated": state.now_ms()}
    changed["tags"] = _check_tags(changed.get("tags"))
    changed["schemaRef"] = _schema_ref(state, changed) if "schemaRef" in body else dataset["schemaRef"]
    _check_profile_tag(state, changed)
    state.datasets[dataset_id] = changed
    return json_response([f"@/dataSets/{dataset_id}"])


def batches_list(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    dataset_id = request.args.get("dataSet")
    batches = [b for b in state.batches.values() if dataset_id is None or b.dataset_id == dataset_id]
    return _catalog_view({b.id: batch_view(state, b, poll=False) for b in batches}, request)


def batches_one(state: PeerState, request: Request, batch_id: str) -> Response:
    state.check_platform(request)
    batch = state.batches.get(batch_id)
    if batch is None:
        raise bad_request(f"Batch {batch_id} is not found", 404, "NotFoundError")
    return json_response({batch_id: batch_view(state, batch, poll=True)})


# -- Dataset Service: data usage labels ----------------------------------------------------------------


def labels(state: PeerState, request: Request, dataset_id: str) -> Response:
    state.check_platform(request)
    dataset_or_404(state, dataset_id)
    current = state.labels.get(dataset_id)
    if request.method == "GET":
        entry = current or {"labels": [], "optionalLabels": [], "etag": hex_id(32)}
        state.labels.setdefault(dataset_id, entry)
        body = {f"AEP:dataset:{dataset_id}": {"imsOrg": state.config.org_id, **_labels_out(entry)}}
        return json_response(body, headers={"etag": entry["etag"]})
    if request.method in ("PUT", "DELETE"):
        if current is None:
            raise bad_request(f"No labels exist for dataset {dataset_id}", 404, "NotFoundError")
        if not request.headers.get("If-Match"):
            raise bad_request("An If-Match header with the labels' etag is required", 428, "PreconditionRequired")
        if request.headers["If-Match"].strip('"') != current["etag"]:
            raise bad_request("If-Match does not match the current etag of the labels", 412, "PreconditionFailed")
    if request.method == "DELETE":
        state.labels[dataset_id] = {"labels": [], "optionalLabels": [], "etag": hex_id(32)}
        return Response(status=200, headers={"etag": state.labels[dataset_id]["etag"]})
    body = json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("labels"), list):
        raise bad_request("The body needs labels, a list of data usage labels such as C1")
    if not all(isinstance(label, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", label) for label in body["labels"]):
        raise bad_request("Labels are names such as C1, C12, I1 or S2")
    optional: Any = body.get("optionalLabels") or []
    if not isinstance(optional, list):
        raise bad_request("optionalLabels is a list")
    if request.method == "POST" and optional:
        raise bad_request("optionalLabels cannot be added with POST")
    entry = {"labels": list(dict.fromkeys(body["labels"])), "optionalLabels": optional, "etag": hex_id(32)}
    entry["parents"] = body.get("parents") or []
    state.labels[dataset_id] = entry
    created = request.method == "POST"
    out = {**_labels_out(entry), "parents": entry["parents"]}
    out.update(
        {"code": "PES-201" if created else "PES-200", "message": "POST Successful" if created else "PUT Successful"}
    )
    return json_response(out, 201 if created else 200, headers={"etag": entry["etag"]})


def _labels_out(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"labels": entry["labels"], "optionalLabels": entry.get("optionalLabels", [])}

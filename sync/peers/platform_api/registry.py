"""Schema Registry reads: the statistics, the global container (the standard classes and field
groups) and the tenant's field groups (mixins) and schemas, listed and looked up by
``$id``/``meta:altId`` with the registry's Accept versions and renderings (``xed-full``,
``notext``, ``desc``). :func:`accept`, :func:`container` and :func:`find` serve the registry's
writes (:mod:`.registry_changes`) and descriptors (:mod:`.registry_descriptors`) too."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from sync.peers import platform_xdm as xdm
from sync.peers.platform_api.state import (
    ApiError,
    PeerState,
    bad_request,
    json_response,
    matches_property,
    resource_summary,
    xdm_error,
)

XED_LIST = ("application/vnd.adobe.xed-id+json", "application/vnd.adobe.xed+json")
XED_LOOKUP = (
    "application/vnd.adobe.xed+json",
    "application/vnd.adobe.xed-full+json",
    "application/vnd.adobe.xed-notext+json",
    "application/vnd.adobe.xed-full-notext+json",
    "application/vnd.adobe.xed-full-desc+json",
    "application/vnd.adobe.xed-deprecatefield+json",
)


def accept(request: Request) -> tuple[str, int | None]:
    """The Accept media type (lower case) and its ``version`` parameter, if any."""
    media, _, params = (request.headers.get("Accept") or "").partition(";")
    match = re.search(r"version\s*=\s*(\d+)", params)
    return media.strip().lower(), int(match.group(1)) if match else None


def _invalid_accept(request: Request, expected: str) -> ApiError:
    supplied = request.headers.get("Accept") or ""
    return xdm_error(
        400,
        "XDM-1006-400",
        "Accept header invalid",
        f"The supplied Accept header is not valid: {supplied} - A valid Accept value should look like {expected}",
    )


def container(state: PeerState, kind: str) -> dict[str, dict[str, Any]]:
    """The tenant's schemas or field groups (``kind`` ``schemas`` or ``fieldgroups``)."""
    return state.schemas if kind == "schemas" else state.field_groups


def find(resources: Mapping[str, dict[str, Any]], ref: str) -> dict[str, Any] | None:
    """The resource ``ref`` names, by ``$id`` (URL-encoded or not) or by ``meta:altId``."""
    ref = unquote(ref)
    if ref.startswith("https:/") and not ref.startswith("https://"):
        ref = "https://" + ref.removeprefix("https:/")
    found = resources.get(ref)
    if found is None:
        found = next((r for r in resources.values() if r.get("meta:altId") == ref), None)
    return found


def _list_resources(request: Request, resources: Iterable[dict[str, Any]], link: str) -> Response:
    media, _version = accept(request)
    if media not in XED_LIST:
        raise _invalid_accept(request, "application/vnd.adobe.{xed|xdm}+json")
    items = [r for r in resources if all(matches_property(r, c) for c in request.args.getlist("property"))]
    orderby = request.args.get("orderby")
    start = request.args.get("start")
    limit_arg = request.args.get("limit")
    if (start or limit_arg) and not orderby:
        raise bad_request("The start and limit parameters need an orderby parameter")
    if orderby:
        descending = orderby.startswith("-")
        key = orderby.lstrip("-+").split(",")[0]
        items.sort(key=lambda r: str(r.get(key, "")), reverse=descending)
        if start is not None:
            items = [r for r in items if (str(r.get(key, "")) < start if descending else str(r.get(key, "")) > start)]
    try:
        limit = min(int(limit_arg), 500) if limit_arg else 300
    except ValueError:
        raise bad_request("limit must be an integer between 0 and 500") from None
    page = items[:limit]
    next_start = str(page[-1].get(orderby.lstrip("-+").split(",")[0], "")) if orderby and len(items) > limit else None
    results = [resource_summary(r) for r in page] if media == XED_LIST[0] else [copy.deepcopy(r) for r in page]
    next_link = None
    if next_start is not None:
        next_link = {"href": f"{request.base_url}?orderby={orderby}&start={next_start}&limit={limit}"}
    return json_response(
        {
            "results": results,
            "_page": {"orderby": orderby, "next": next_start, "count": len(results)},
            "_links": {"next": next_link, "global_schemas": {"href": link}},
        }
    )


def _strip_text(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_text(v) for k, v in node.items() if k not in ("title", "description")}
    if isinstance(node, list):
        return [_strip_text(v) for v in node]
    return node


def _render(state: PeerState, resource: dict[str, Any], media: str) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    if "-full" in media:
        if resource.get("meta:resourceType") == "schemas":
            compiled = state.compiled_for(resource["$id"])
            out["properties"] = copy.deepcopy(compiled.json_schema["properties"])
            out["required"] = compiled.json_schema.get("required", [])
        else:
            out["properties"] = xdm.tenant_properties(resource)
        out.pop("allOf", None)
        out.pop("definitions", None)
        if media.endswith("-desc+json"):
            out["meta:descriptors"] = [d for d in state.descriptors.values() if d.get("xdm:sourceSchema") == out["$id"]]
    if "notext" in media:
        out = _strip_text(out)
    return out


def _lookup(state: PeerState, request: Request, resource: dict[str, Any] | None, ref: str, kind: str) -> Response:
    media, version = accept(request)
    if media not in XED_LOOKUP:
        raise _invalid_accept(request, "application/vnd.adobe.xed+json; version={MAJOR_VERSION}")
    if version is None:
        raise xdm_error(
            400,
            "XDM-1007-400",
            "Accept header invalid",
            "version must be supplied in the accept header. Example: "
            "application/vnd.adobe.xed-full-notext+json; version=1",
        )
    if resource is None or int(str(resource.get("version", "1.0")).split(".")[0]) != version:
        raise xdm_error(
            404,
            "XDM-1010-404",
            "Resource not found",
            f"The requested {kind} resource {unquote(ref)} with version {version} is not found.",
        )
    return json_response(_render(state, resource, media))


def registry_stats(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    class_usage: dict[str, list[dict[str, Any]]] = {}
    for schema in state.schemas.values():
        class_usage.setdefault(schema.get("meta:class", ""), []).append(
            {k: schema.get(k) for k in ("$id", "title", "description")}
        )
    return json_response(
        {
            "imsOrg": state.config.org_id,
            "tenantId": state.config.tenant_id,
            "counts": {
                "schemas": len(state.schemas),
                "mixins": len(state.field_groups),
                "datatypes": 0,
                "classes": 0,
                "unions": sum(1 for s in state.schemas.values() if "union" in (s.get("meta:immutableTags") or [])),
            },
            "recentlyCreatedResources": [
                {k: r.get(k) for k in ("$id", "title", "description", "meta:resourceType", "version")}
                for r in [*state.schemas.values(), *state.field_groups.values()][-5:]
            ],
            "recentlyUpdatedResources": [],
            "classUsage": class_usage,
        }
    )


def registry_global_list(state: PeerState, request: Request, kind: str) -> Response:
    state.check_platform(request)
    base = f"{request.host_url.rstrip('/')}/data/foundation/schemaregistry/global/{kind}"
    if kind == "classes":
        return _list_resources(request, [c.resource() for c in xdm.CLASSES.values()], base)
    return _list_resources(request, [copy.deepcopy(g) for g in xdm.STANDARD_FIELD_GROUPS.values()], base)


def registry_global_get(state: PeerState, request: Request, kind: str, ref: str) -> Response:
    state.check_platform(request)
    if kind == "classes":
        resources = {c.id: c.resource() for c in xdm.CLASSES.values()}
    else:
        resources = {k: copy.deepcopy(v) for k, v in xdm.STANDARD_FIELD_GROUPS.items()}
    return _lookup(state, request, find(resources, ref), ref, "class" if kind == "classes" else "mixin")


def registry_list(state: PeerState, request: Request, kind: str) -> Response:
    state.check_platform(request)
    kind = "fieldgroups" if kind == "mixins" else kind
    base = f"{request.host_url.rstrip('/')}/data/foundation/schemaregistry/global/{kind}"
    return _list_resources(request, list(container(state, kind).values()), base)


def registry_get(state: PeerState, request: Request, kind: str, ref: str) -> Response:
    state.check_platform(request)
    kind = "fieldgroups" if kind == "mixins" else kind
    found = find(container(state, kind), ref)
    return _lookup(state, request, found, ref, "schema" if kind == "schemas" else "mixin")

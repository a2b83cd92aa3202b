"""Schema Registry: classes, field groups (mixins), schemas and descriptors, tenant and global
containers, with the registry's Accept versions, lookups by ``$id``/``meta:altId`` and JSON Patch."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from sync.peers import platform_xdm as xdm
from sync.peers.platform_api.state import (
    ApiError,
    PeerState,
    bad_request,
    hex_id,
    json_body,
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


def _accept(request: Request) -> tuple[str, int | None]:
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


def _container(state: PeerState, kind: str) -> dict[str, dict[str, Any]]:
    return state.schemas if kind == "schemas" else state.field_groups


def _find(resources: Mapping[str, dict[str, Any]], ref: str) -> dict[str, Any] | None:
    ref = unquote(ref)
    if ref.startswith("https:/") and not ref.startswith("https://"):
        ref = "https://" + ref.removeprefix("https:/")
    found = resources.get(ref)
    if found is None:
        found = next((r for r in resources.values() if r.get("meta:altId") == ref), None)
    return found


def _list_resources(request: Request, resources: Iterable[dict[str, Any]], link: str) -> Response:
    media, _version = _accept(request)
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
    media, version = _accept(request)
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
    return _lookup(state, request, _find(resources, ref), ref, "class" if kind == "classes" else "mixin")


def registry_list(state: PeerState, request: Request, kind: str) -> Response:
    state.check_platform(request)
    kind = "fieldgroups" if kind == "mixins" else kind
    base = f"{request.host_url.rstrip('/')}/data/foundation/schemaregistry/global/{kind}"
    return _list_resources(request, list(_container(state, kind).values()), base)


def registry_get(state: PeerState, request: Request, kind: str, ref: str) -> Response:
    state.check_platform(request)
    kind = "fieldgroups" if kind == "mixins" else kind
    found = _find(_container(state, kind), ref)
    return _lookup(state, request, found, ref, "schema" if kind == "schemas" else "mixin")


def _title_taken(state: PeerState, title: str, own_id: str | None = None) -> None:
    for resource in [*state.schemas.values(), *state.field_groups.values()]:
        if resource.get("title") == title and resource["$id"] != own_id:
            raise xdm_error(
                400,
                "XDM-1521-400",
                "Title not unique",
                f"Object titles must be unique. An object {resource['$id']} already exists with the same title",
            )


def _registry_metadata(state: PeerState, created: int | None = None) -> dict[str, Any]:
    now = state.now_ms()
    return {
        "repo:createdDate": created or now,
        "repo:lastModifiedDate": now,
        "xdm:createdClientId": state.config.client_id,
        "xdm:lastModifiedClientId": state.config.client_id,
        "eTag": hex_id(64),
    }


def _check_field_group(state: PeerState, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("title"), str) or not body["title"].strip():
        raise bad_request("A field group needs a title")
    if not isinstance(body.get("meta:intendedToExtend"), list):
        raise bad_request("A field group needs meta:intendedToExtend, the list of classes it is compatible with")
    problems = xdm.namespace_problems(body, state.config.tenant_id)
    if problems:
        tenant = state.config.tenant_id
        raise xdm_error(
            400,
            "XDM-1021-400",
            "Namespace validation error",
            "A custom field is defined under an invalid namespace. All custom fields must be defined under a "
            f"top-level field named _{tenant}, and their names may not start with an underscore: {', '.join(problems)}",
        )
    return body


def _check_schema(state: PeerState, body: Any) -> tuple[dict[str, Any], xdm.CompiledSchema]:
    if not isinstance(body, dict) or not isinstance(body.get("title"), str) or not body["title"].strip():
        raise bad_request("A schema needs a title")
    if not isinstance(body.get("allOf"), list) or not body["allOf"]:
        raise bad_request("A schema needs an allOf array with the $ref of its class and of its field groups")
    try:
        compiled = xdm.compile_schema(body, state.field_groups, state.config.tenant_id)
    except xdm.CompileError as exc:
        raise bad_request(str(exc)) from None
    return body, compiled


def _union_check(state: PeerState, schema: Mapping[str, Any], compiled: xdm.CompiledSchema) -> None:
    if "union" not in (schema.get("meta:immutableTags") or []):
        return
    if not compiled.has_identity_map and state.primary_path(str(schema.get("$id"))) is None:
        raise xdm_error(
            400,
            "XDM-1528-400",
            "Union descriptor validation error",
            "To participate in a union, a schema must include an identityMap fieldgroup or a primary identity "
            "descriptor.",
        )


def _schema_resource(
    state: PeerState, body: dict[str, Any], compiled: xdm.CompiledSchema, resource_id: str
) -> dict[str, Any]:
    cls = xdm.CLASSES[compiled.class_id]
    refs = [item["$ref"] for item in body["allOf"]]
    extends = [cls.id, *cls.extends, *[r for r in refs if r != cls.id]]
    out = {k: v for k, v in body.items() if not k.startswith("$") and k not in ("version", "meta:altId")}
    out.update(
        {
            "$id": resource_id,
            "meta:altId": xdm.alt_id(resource_id),
            "meta:resourceType": "schemas",
            "version": "1.0",
            "type": "object",
            "allOf": [{**item, "type": "object", "meta:xdmType": "object"} for item in body["allOf"]],
            "refs": refs,
            "meta:class": cls.id,
            "meta:abstract": False,
            "meta:extensible": False,
            "meta:extends": list(dict.fromkeys(extends)),
            "meta:containerId": "tenant",
            "imsOrg": state.config.org_id,
            "meta:xdmType": "object",
            "meta:registryMetadata": _registry_metadata(state),
            "meta:tenantNamespace": f"_{state.config.tenant_id}",
        }
    )
    return out


def _field_group_resource(state: PeerState, body: dict[str, Any], resource_id: str) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if not k.startswith("$") and k not in ("version", "meta:altId")}
    out.update(
        {
            "$id": resource_id,
            "meta:altId": xdm.alt_id(resource_id),
            "meta:resourceType": "mixins",
            "version": "1.0",
            "type": "object",
            "imsOrg": state.config.org_id,
            "meta:extensible": True,
            "meta:abstract": True,
            "meta:xdmType": "object",
            "meta:containerId": "tenant",
            "meta:registryMetadata": _registry_metadata(state),
            "meta:tenantNamespace": f"_{state.config.tenant_id}",
        }
    )
    return out


def _record_standard_refs(state: PeerState, compiled: xdm.CompiledSchema) -> None:
    state.standard_refs.update(compiled.open_refs)


def registry_create(state: PeerState, request: Request, kind: str) -> Response:
    state.check_platform(request)
    kind = "fieldgroups" if kind == "mixins" else kind
    body = json_body(request)
    tenant = state.config.tenant_id
    if kind == "fieldgroups":
        group = _check_field_group(state, body)
        _title_taken(state, group["title"])
        resource = _field_group_resource(state, group, f"https://ns.adobe.com/{tenant}/mixins/{hex_id(48)}")
        state.field_groups[resource["$id"]] = resource
        return json_response(resource, 201)
    schema, compiled = _check_schema(state, body)
    _title_taken(state, schema["title"])
    resource = _schema_resource(state, schema, compiled, f"https://ns.adobe.com/{tenant}/schemas/{hex_id(48)}")
    _union_check(state, resource, compiled)
    state.schemas[resource["$id"]] = resource
    state.compiled[resource["$id"]] = compiled
    _record_standard_refs(state, compiled)
    return json_response(resource, 201)


def _bump(version: Any) -> str:
    major, _, minor = str(version or "1.0").partition(".")
    return f"{major}.{int(minor or 0) + 1}"


def _pointer_parts(path: str) -> list[str]:
    if not path.startswith("/"):
        raise bad_request(f"JSON Patch path {path!r} must start with /")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def apply_patch(document: dict[str, Any], operations: Any) -> dict[str, Any]:  # noqa: PLR0912 -- one branch per op
    """JSON Patch (RFC 6902) ``add``, ``remove`` and ``replace``, as the registry's PATCH takes."""
    if not isinstance(operations, list):
        raise bad_request("A PATCH body is a JSON Patch array of operations")
    doc = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or operation.get("op") not in ("add", "remove", "replace"):
            raise bad_request(f"Unsupported JSON Patch operation: {operation}")
        parts = _pointer_parts(str(operation.get("path", "")))
        parent: Any = doc
        for part in parts[:-1]:
            try:
                parent = parent[int(part)] if isinstance(parent, list) else parent[part]
            except (KeyError, IndexError, ValueError):
                raise bad_request(f"JSON Patch path {operation.get('path')} does not exist") from None
        last = parts[-1]
        op = operation["op"]
        try:
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if op == "add":
                    parent.insert(index, operation.get("value"))
                elif op == "remove":
                    del parent[index]
                else:
                    parent[index] = operation.get("value")
            elif isinstance(parent, dict):
                if op != "add" and last not in parent:
                    raise KeyError(last)
                if op == "remove":
                    del parent[last]
                else:
                    parent[last] = operation.get("value")
            else:
                raise KeyError(last)
        except (KeyError, IndexError, ValueError):
            raise bad_request(f"JSON Patch path {operation.get('path')} does not exist") from None
    return doc


def _used_by_datasets(state: PeerState, schema_id: str) -> bool:
    return any((d.get("schemaRef") or {}).get("id") == schema_id for d in state.datasets.values())


def _update(state: PeerState, kind: str, existing: dict[str, Any], body: Any) -> dict[str, Any]:
    """The new version of a resource after PUT (``body``) or PATCH (patched document)."""
    if kind == "fieldgroups":
        group = _check_field_group(state, body)
        _title_taken(state, group["title"], existing["$id"])
        resource = _field_group_resource(state, group, existing["$id"])
    else:
        schema, compiled = _check_schema(state, body)
        _title_taken(state, schema["title"], existing["$id"])
        resource = _schema_resource(state, schema, compiled, existing["$id"])
        old_tags = existing.get("meta:immutableTags") or []
        if any(tag not in (resource.get("meta:immutableTags") or []) for tag in old_tags):
            raise bad_request("Immutable tags cannot be removed once set")
        frozen = _used_by_datasets(state, existing["$id"]) or "union" in old_tags
        if frozen and not set(existing.get("refs") or []) <= set(resource.get("refs") or []):
            raise bad_request(
                "Breaking changes are not allowed on a schema used by a dataset or enabled for Profile: "
                "field groups can be added, not removed"
            )
        _union_check(state, resource, compiled)
        state.compiled[existing["$id"]] = compiled
        _record_standard_refs(state, compiled)
    resource["version"] = _bump(existing.get("version"))
    created = (existing.get("meta:registryMetadata") or {}).get("repo:createdDate")
    resource["meta:registryMetadata"] = _registry_metadata(state, created)
    return resource


def registry_change(state: PeerState, request: Request, kind: str, ref: str) -> Response:
    state.check_platform(request)
    kind = "fieldgroups" if kind == "mixins" else kind
    resources = _container(state, kind)
    existing = _find(resources, ref)
    if existing is None:
        raise xdm_error(
            404, "XDM-1010-404", "Resource not found", f"The requested resource {unquote(ref)} is not found."
        )
    if request.method == "DELETE":
        if kind == "schemas" and _used_by_datasets(state, existing["$id"]):
            raise bad_request(f"Schema {existing['$id']} is used by a dataset and cannot be deleted")
        if kind == "fieldgroups" and any(existing["$id"] in (s.get("refs") or []) for s in state.schemas.values()):
            raise bad_request(f"Field group {existing['$id']} is used by a schema and cannot be deleted")
        del resources[existing["$id"]]
        state.compiled.pop(existing["$id"], None)
        return Response(status=204)
    body = json_body(request)
    if request.method == "PATCH":
        body = apply_patch(existing, body)
        body["allOf"] = [{"$ref": item.get("$ref")} for item in body.get("allOf") or [] if isinstance(item, dict)]
    resource = _update(state, kind, existing, body)
    resources[existing["$id"]] = resource
    if kind == "fieldgroups":  # schemas using it see its new fields
        for schema in state.schemas.values():
            if existing["$id"] in (schema.get("refs") or []):
                state.compiled.pop(schema["$id"], None)
    return json_response(resource)


def _descriptor_checked(state: PeerState, body: Any, own_id: str | None = None) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("@type"), str):
        raise bad_request("A descriptor needs an @type")
    if "xdm:sourceSchema" not in body:
        raise bad_request("A descriptor needs xdm:sourceSchema")
    schema = state.schemas.get(str(body["xdm:sourceSchema"]))
    if schema is None:
        raise bad_request(f"Schema {body['xdm:sourceSchema']} is not found")
    if body["@type"] == "xdm:descriptorIdentity":
        path = body.get("xdm:sourceProperty")
        if not isinstance(path, str) or not path.startswith("/") or path.endswith("/"):
            raise bad_request("xdm:sourceProperty must be a path such as /personalEmail/address")
        if not body.get("xdm:namespace"):
            raise bad_request("An identity descriptor needs xdm:namespace")
        if state.compiled_for(schema["$id"]).has_path(path) is False:
            raise bad_request(f"xdm:sourceProperty {path} is not a field of schema {schema['$id']}")
        primary = state.primary_path(schema["$id"])
        if body.get("xdm:isPrimary") is True and primary is not None:
            holder = next(
                d["@id"]
                for d in state.descriptors.values()
                if d.get("xdm:sourceSchema") == schema["$id"] and d.get("xdm:isPrimary") is True
            )
            if holder != own_id:
                raise bad_request(f"Schema {schema['$id']} already has a primary identity ({primary})")
    return body


def descriptors_create(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    body = _descriptor_checked(state, json_body(request))
    descriptor = {
        **body,
        "meta:containerId": "tenant",
        "imsOrg": state.config.org_id,
        "created": state.now_ms(),
        "updated": state.now_ms(),
        "@id": hex_id(40),
    }
    state.descriptors[descriptor["@id"]] = descriptor
    return json_response(descriptor, 201)


def descriptors_list(state: PeerState, request: Request) -> Response:
    state.check_platform(request)
    media, _version = _accept(request)
    items = list(state.descriptors.values())
    if media == "application/vnd.adobe.xdm-v2+json":
        return json_response({"results": items, "_page": {"count": len(items), "next": None}})
    shapes: dict[str, Callable[[dict[str, Any]], Any]] = {
        "application/vnd.adobe.xdm-id+json": lambda d: d["@id"],
        "application/vnd.adobe.xdm-link+json": lambda d: f"/tenant/descriptors/{d['@id']}",
        "application/vnd.adobe.xdm+json": lambda d: d,
    }
    shape = shapes.get(media)
    if shape is None:
        raise bad_request("Unknown Accept format available ", 406, "NotAcceptableError")
    by_type: dict[str, list[Any]] = {}
    for descriptor in items:
        by_type.setdefault(descriptor["@type"], []).append(shape(descriptor))
    return json_response(by_type)


def descriptors_one(state: PeerState, request: Request, ref: str) -> Response:
    state.check_platform(request)
    descriptor = state.descriptors.get(ref)
    if descriptor is None:
        raise xdm_error(404, "XDM-1017-404", "Resource not found", f"The requested descriptor {ref} is not found.")
    if request.method == "GET":
        return json_response(descriptor)
    if request.method == "DELETE":
        del state.descriptors[ref]
        _forget_compiled(state, descriptor)
        return Response(status=204)
    body = _descriptor_checked(state, json_body(request), ref)
    state.descriptors[ref] = {**body, "meta:containerId": "tenant", "imsOrg": state.config.org_id, "@id": ref}
    state.descriptors[ref]["created"] = descriptor.get("created")
    state.descriptors[ref]["updated"] = state.now_ms()
    return json_response({"@id": ref}, 201)


def _forget_compiled(state: PeerState, descriptor: Mapping[str, Any]) -> None:
    state.compiled.pop(str(descriptor.get("xdm:sourceSchema")), None)

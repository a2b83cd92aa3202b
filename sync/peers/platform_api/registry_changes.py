"""Schema Registry writes: creating, replacing (PUT), patching (PATCH, JSON Patch) and deleting the
tenant's field groups and schemas, with the registry's checks (unique titles, the tenant namespace,
a schema compiled against its class and field groups, Profile's union rules, no breaking change
to a schema in use) and its metadata and versions."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from sync.peers import platform_xdm as xdm
from sync.peers.platform_api.registry import container, find
from sync.peers.platform_api.state import PeerState, bad_request, hex_id, json_body, json_response, xdm_error


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
    resources = container(state, kind)
    existing = find(resources, ref)
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

"""Schema Registry descriptors: identity descriptors (one primary identity per schema, on a field
the schema has) and the other descriptor types, created, listed in the registry's Accept shapes,
read, replaced and deleted."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from werkzeug.wrappers import Request, Response

from sync.peers.platform_api.registry import accept
from sync.peers.platform_api.state import PeerState, bad_request, hex_id, json_body, json_response, xdm_error


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
    media, _version = accept(request)
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

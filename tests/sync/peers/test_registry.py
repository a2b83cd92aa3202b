"""Schema Registry: field groups and schemas (create, list, find by title, look up, change),
descriptors and enabling a schema for Profile, with Adobe's answers and errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.sync.peers.conftest import EXPERIENCE_EVENT, IDENTITY_MAP, PROFILE, XED, XED_ID, Aep

REGISTRY = "/data/foundation/schemaregistry"


def list_titles(aep: Aep, kind: str, **params: str) -> httpx.Response:
    return aep.call("GET", f"{REGISTRY}/tenant/{kind}", params=params, headers={"Accept": XED_ID})


def test_created_field_group_and_schema_carry_registry_ids(aep: Aep) -> None:
    group = aep.field_group("delivery fields", {"deliveryId": {"type": "string"}})
    tenant = aep.config.tenant_id
    assert group["$id"].startswith(f"https://ns.adobe.com/{tenant}/mixins/")
    assert group["meta:altId"] == f"_{tenant}.mixins." + group["$id"].rsplit("/", 1)[-1]
    assert group["meta:resourceType"] == "mixins" and group["version"] == "1.0"
    schema = aep.schema("delivery events", [EXPERIENCE_EVENT, group["$id"]])
    assert schema["$id"].startswith(f"https://ns.adobe.com/{tenant}/schemas/")
    assert schema["meta:altId"] == f"_{tenant}.schemas." + schema["$id"].rsplit("/", 1)[-1]
    assert schema["meta:class"] == EXPERIENCE_EVENT and schema["meta:resourceType"] == "schemas"
    assert group["$id"] in schema["meta:extends"] and schema["meta:containerId"] == "tenant"
    assert schema["imsOrg"] == aep.config.org_id


def test_find_by_title_lists_summaries(aep: Aep) -> None:
    schema = aep.schema("delivery events", [EXPERIENCE_EVENT])
    aep.schema("other events", [EXPERIENCE_EVENT])
    response = list_titles(aep, "schemas", property="title==delivery events")
    assert response.status_code == 200
    body = response.json()
    assert body["results"] == [{k: schema[k] for k in ("$id", "meta:altId", "version", "title")}]
    assert body["_page"]["count"] == 1 and body["_page"]["next"] is None
    assert list_titles(aep, "schemas", property="title==nothing").json()["results"] == []
    full = aep.call("GET", f"{REGISTRY}/tenant/schemas", headers={"Accept": "application/vnd.adobe.xed+json"})
    assert {r["title"] for r in full.json()["results"]} == {"delivery events", "other events"}
    assert all("allOf" in r for r in full.json()["results"])


def test_lists_page_with_orderby_start_and_limit(aep: Aep) -> None:
    for title in ("c", "a", "b"):
        aep.schema(title, [EXPERIENCE_EVENT])
    first = list_titles(aep, "schemas", orderby="title", limit="2").json()
    assert [r["title"] for r in first["results"]] == ["a", "b"] and first["_page"]["next"] == "b"
    rest = list_titles(aep, "schemas", orderby="title", start="b").json()
    assert [r["title"] for r in rest["results"]] == ["c"] and rest["_page"]["next"] is None
    assert list_titles(aep, "schemas", limit="2").status_code == 400  # limit needs orderby


def test_lists_and_lookups_need_accept_headers(aep: Aep) -> None:
    schema = aep.schema("delivery events", [EXPERIENCE_EVENT])
    no_accept = aep.call("GET", f"{REGISTRY}/tenant/schemas")
    assert no_accept.status_code == 400
    assert no_accept.json()["type"] == "http://ns.adobe.com/aep/errors/XDM-1006-400"
    path = f"{REGISTRY}/tenant/schemas/{quote(schema['$id'], safe='')}"
    no_version = aep.call("GET", path, headers={"Accept": "application/vnd.adobe.xed+json"})
    assert no_version.status_code == 400 and "version must be supplied" in no_version.json()["detail"]
    wrong_version = aep.call("GET", path, headers={"Accept": "application/vnd.adobe.xed+json; version=2"})
    assert wrong_version.status_code == 404


def test_look_up_by_encoded_id_or_alt_id(aep: Aep) -> None:
    group = aep.field_group("delivery fields", {"deliveryId": {"type": "string"}})
    schema = aep.schema("delivery events", [EXPERIENCE_EVENT, group["$id"]])
    by_id = aep.call("GET", f"{REGISTRY}/tenant/schemas/{quote(schema['$id'], safe='')}", headers={"Accept": XED})
    by_alt = aep.call("GET", f"{REGISTRY}/tenant/schemas/{schema['meta:altId']}", headers={"Accept": XED})
    assert by_id.status_code == by_alt.status_code == 200 and by_id.json() == by_alt.json()
    full = aep.call(
        "GET",
        f"{REGISTRY}/tenant/schemas/{schema['meta:altId']}",
        headers={"Accept": "application/vnd.adobe.xed-full+json; version=1"},
    ).json()
    assert full["required"] == ["_id", "timestamp"]
    tenant_fields = full["properties"][f"_{aep.config.tenant_id}"]["properties"]
    assert tenant_fields == {"deliveryId": {"type": "string"}}
    missing = aep.call("GET", f"{REGISTRY}/tenant/schemas/_nobody.schemas.0", headers={"Accept": XED})
    assert missing.status_code == 404 and missing.json()["title"] == "Resource not found"


def test_titles_are_unique_across_field_groups_and_schemas(aep: Aep) -> None:
    group = aep.field_group("delivery", {"deliveryId": {"type": "string"}})
    body = {"title": "delivery", "type": "object", "allOf": [{"$ref": EXPERIENCE_EVENT}]}
    again = aep.call("POST", f"{REGISTRY}/tenant/schemas", json=body)
    assert again.status_code == 400
    assert again.json()["type"] == "http://ns.adobe.com/aep/errors/XDM-1521-400"
    assert again.json()["title"] == "Title not unique" and group["$id"] in again.json()["detail"]


def test_custom_fields_must_live_under_the_tenant(aep: Aep) -> None:
    body = {
        "title": "bad group",
        "type": "object",
        "meta:intendedToExtend": [EXPERIENCE_EVENT],
        "definitions": {"custom": {"properties": {"deliveryId": {"type": "string"}}}},
        "allOf": [{"$ref": "#/definitions/custom"}],
    }
    response = aep.call("POST", f"{REGISTRY}/tenant/fieldgroups", json=body)
    assert response.status_code == 400
    assert response.json()["type"] == "http://ns.adobe.com/aep/errors/XDM-1021-400"


@pytest.mark.parametrize(
    ("refs", "words"),
    [
        (["https://ns.adobe.com/xdm/context/identitymap"], "exactly one class"),
        ([EXPERIENCE_EVENT, PROFILE], "exactly one class"),
        ([EXPERIENCE_EVENT, "https://ns.adobe.com/pushgatelocal/mixins/nothing"], "not found"),
    ],
)
def test_a_schema_needs_one_class_and_known_field_groups(aep: Aep, refs: list[str], words: str) -> None:
    body = {"title": "broken", "type": "object", "allOf": [{"$ref": r} for r in refs]}
    response = aep.call("POST", f"{REGISTRY}/tenant/schemas", json=body)
    assert response.status_code == 400 and words in response.json()["detail"]


def test_field_groups_must_suit_the_class(aep: Aep) -> None:
    group = aep.field_group("profile fields", {"tier": {"type": "string"}}, extends=PROFILE)
    body = {"title": "events", "type": "object", "allOf": [{"$ref": EXPERIENCE_EVENT}, {"$ref": group["$id"]}]}
    response = aep.call("POST", f"{REGISTRY}/tenant/schemas", json=body)
    assert response.status_code == 400 and "not compatible" in response.json()["detail"]


def test_standard_field_groups_are_recorded(aep: Aep, http: httpx.Client) -> None:
    ref = "https://ns.adobe.com/experience/customerJourneyManagement/message-delivery-feedback"
    aep.schema("feedback", [EXPERIENCE_EVENT, ref])
    assert http.get("/_peer/state").json()["standard_refs"] == [ref]


def test_union_needs_an_identity(aep: Aep, http: httpx.Client) -> None:
    group = aep.field_group("profile fields", {"email": {"type": "string"}}, extends=PROFILE)
    schema = aep.schema("profiles", [PROFILE, group["$id"]])
    tag = [{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}]
    refused = aep.patch_schema(schema["$id"], tag)
    assert refused.status_code == 400
    assert refused.json()["type"] == "http://ns.adobe.com/aep/errors/XDM-1528-400"
    descriptor = aep.descriptor(schema["$id"], f"/_{aep.config.tenant_id}/email")
    assert descriptor.status_code == 201 and descriptor.json()["@id"]
    enabled = aep.patch_schema(schema["$id"], tag)
    assert enabled.status_code == 200
    assert enabled.json()["meta:immutableTags"] == ["union"] and enabled.json()["version"] == "1.1"
    state = http.get("/_peer/state").json()["schemas"][0]
    assert state["profile"] is True and state["primary_identity"] == f"/_{aep.config.tenant_id}/email"
    untag = aep.patch_schema(schema["$id"], [{"op": "remove", "path": "/meta:immutableTags"}])
    assert untag.status_code == 400  # immutable tags stay


def test_event_schemas_carry_an_identity_map_for_the_union(aep: Aep) -> None:
    schema = aep.schema("events", [EXPERIENCE_EVENT])
    aep.enable_union(schema["$id"])
    profile = aep.schema("profiles", [PROFILE, IDENTITY_MAP])
    aep.enable_union(profile["$id"])


def test_descriptors(aep: Aep) -> None:
    group = aep.field_group("profile fields", {"email": {"type": "string"}, "crm": {"type": "string"}}, extends=PROFILE)
    schema = aep.schema("profiles", [PROFILE, group["$id"]])
    tenant = aep.config.tenant_id
    assert aep.descriptor(schema["$id"], f"/_{tenant}/nowhere").status_code == 400
    first = aep.descriptor(schema["$id"], f"/_{tenant}/email").json()
    assert first["xdm:sourceProperty"] == f"/_{tenant}/email" and first["meta:containerId"] == "tenant"
    second = aep.descriptor(schema["$id"], f"/_{tenant}/crm", namespace="CRMID")
    assert second.status_code == 400 and "primary identity" in second.json()["detail"]
    assert aep.descriptor(schema["$id"], f"/_{tenant}/crm", namespace="CRMID", primary=False).status_code == 201
    listing = aep.call("GET", f"{REGISTRY}/tenant/descriptors", headers={"Accept": "application/vnd.adobe.xdm+json"})
    assert [d["xdm:sourceProperty"] for d in listing.json()["xdm:descriptorIdentity"]] == [
        f"/_{tenant}/email",
        f"/_{tenant}/crm",
    ]
    links = aep.call("GET", f"{REGISTRY}/tenant/descriptors", headers={"Accept": "application/vnd.adobe.xdm-link+json"})
    assert links.json()["xdm:descriptorIdentity"][0] == f"/tenant/descriptors/{first['@id']}"
    assert aep.call("GET", f"{REGISTRY}/tenant/descriptors").status_code == 406
    one = aep.call("GET", f"{REGISTRY}/tenant/descriptors/{first['@id']}")
    assert one.status_code == 200 and one.json()["@id"] == first["@id"]
    assert aep.call("DELETE", f"{REGISTRY}/tenant/descriptors/{first['@id']}").status_code == 204


def test_patch_adds_field_groups_and_frozen_schemas_only_grow(aep: Aep) -> None:
    first = aep.field_group("first fields", {"a": {"type": "string"}})
    second = aep.field_group("second fields", {"b": {"type": "string"}})
    schema = aep.schema("events", [EXPERIENCE_EVENT, first["$id"]])
    added = aep.patch_schema(
        schema["$id"],
        [
            {"op": "add", "path": "/meta:extends/-", "value": second["$id"]},
            {"op": "add", "path": "/allOf/-", "value": {"$ref": second["$id"]}},
        ],
    )
    assert added.status_code == 200 and second["$id"] in added.json()["meta:extends"]
    aep.dataset("events", schema["$id"])
    removed = aep.patch_schema(schema["$id"], [{"op": "remove", "path": "/allOf/1"}])
    assert removed.status_code == 400 and "Breaking changes" in removed.json()["detail"]


def test_global_container_holds_the_standard_classes(aep: Aep) -> None:
    classes = aep.call("GET", f"{REGISTRY}/global/classes", headers={"Accept": XED_ID}).json()["results"]
    assert {c["$id"] for c in classes} == {EXPERIENCE_EVENT, PROFILE}
    event = aep.call("GET", f"{REGISTRY}/global/classes/{quote(EXPERIENCE_EVENT, safe='')}", headers={"Accept": XED})
    assert event.status_code == 200 and event.json()["required"] == ["_id", "timestamp"]


def test_post_needs_json_content_type(aep: Aep) -> None:
    response = aep.call(
        "POST", f"{REGISTRY}/tenant/schemas", content=b'{"title": "x"}', headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 400 and response.json()["detail"] == "A valid content-type must be specified"


def _load(name: str) -> Any:
    import json
    from pathlib import Path

    return json.loads((Path(__file__).resolve().parents[3] / "sync" / "xdm" / "registry" / name).read_text())


@pytest.mark.parametrize("stream", ["broadlog", "trackinglog", "quarantine", "preferences"])
def test_pushgates_own_xdm_definitions_provision_on_the_peer(aep: Aep, stream: str) -> None:
    """sync/xdm/registry holds what the sync module provisions: the peer takes all of it."""
    import json

    tenant = aep.config.tenant_id
    group = json.loads(json.dumps(_load(f"fieldgroup-{stream}.json")).replace("{TENANT_ID}", tenant))
    created = aep.call("POST", f"{REGISTRY}/tenant/fieldgroups", json=group)
    assert created.status_code == 201, created.text
    schema = json.loads(
        json.dumps(_load(f"schema-{stream}.json")).replace("{TENANT_FIELD_GROUP}", created.json()["$id"])
    )
    made = aep.call("POST", f"{REGISTRY}/tenant/schemas", json=schema)
    assert made.status_code == 201, made.text

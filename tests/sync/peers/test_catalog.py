"""Catalog datasets (create, list, find by name, Profile tags) and Dataset Service labels."""

from __future__ import annotations

import httpx

from tests.sync.peers.conftest import EXPERIENCE_EVENT, Aep

CATALOG = "/data/foundation/catalog"


def test_create_answers_a_reference_and_get_is_keyed_by_id(aep: Aep, events: dict[str, str]) -> None:
    body = {
        "name": "deliveries",
        "description": "push deliveries",
        "schemaRef": {"id": events["schema"], "contentType": "application/vnd.adobe.xed+json;version=1"},
    }
    created = aep.call("POST", f"{CATALOG}/dataSets", json=body)
    assert created.status_code == 201
    (reference,) = created.json()
    assert reference.startswith("@/dataSets/")
    dataset_id = reference.rsplit("/", 1)[-1]
    found = aep.call("GET", f"{CATALOG}/dataSets/{dataset_id}").json()
    assert list(found) == [dataset_id]
    dataset = found[dataset_id]
    assert dataset["name"] == "deliveries" and dataset["schemaRef"]["id"] == events["schema"]
    assert dataset["imsOrg"] == aep.config.org_id and dataset["version"] == "1.0.0"
    assert aep.call("GET", f"{CATALOG}/dataSets/000000000000000000000000").status_code == 404


def test_find_by_name_with_filters_and_properties(aep: Aep, events: dict[str, str]) -> None:
    first = aep.dataset("same name", events["schema"])
    second = aep.dataset("same name", events["schema"])  # Catalog names need not be unique
    aep.dataset("other", events["schema"])
    by_name = aep.call("GET", f"{CATALOG}/dataSets", params={"name": "same name", "properties": "name,schemaRef"})
    assert set(by_name.json()) == {first, second, events["dataset"]} - {events["dataset"]}
    assert set(by_name.json()[first]) == {"name", "schemaRef"}
    by_property = aep.call("GET", f"{CATALOG}/dataSets", params={"property": "name==other"})
    assert [d["name"] for d in by_property.json().values()] == ["other"]
    negated = aep.call("GET", f"{CATALOG}/dataSets", params={"name": "!same name"})
    assert {d["name"] for d in negated.json().values()} == {"other", "push feedback"}
    limited = aep.call("GET", f"{CATALOG}/dataSets", params={"limit": "2"})
    assert len(limited.json()) == 2
    assert aep.call("GET", f"{CATALOG}/dataSets", params={"limit": "0"}).status_code == 400


def test_profile_tag_needs_a_union_schema(aep: Aep, events: dict[str, str]) -> None:
    body = {
        "name": "profile events",
        "schemaRef": {"id": events["schema"], "contentType": "application/vnd.adobe.xed+json;version=1"},
        "tags": {"unifiedProfile": ["enabled:true"]},
    }
    refused = aep.call("POST", f"{CATALOG}/dataSets", json=body)
    assert refused.status_code == 400
    assert refused.json()["detail"] == "To enable profile datasets the schema should be valid"
    aep.enable_union(events["schema"])
    assert aep.call("POST", f"{CATALOG}/dataSets", json=body).status_code == 201


def test_patch_enables_an_existing_dataset_for_profile(aep: Aep, events: dict[str, str], http: httpx.Client) -> None:
    aep.enable_union(events["schema"])
    tags = {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}
    patched = aep.call("PATCH", f"{CATALOG}/dataSets/{events['dataset']}", json={"tags": tags})
    assert patched.status_code == 200 and patched.json() == [f"@/dataSets/{events['dataset']}"]
    dataset = aep.call("GET", f"{CATALOG}/dataSets/{events['dataset']}").json()[events["dataset"]]
    assert dataset["tags"]["unifiedProfile"] == ["enabled:true"]
    assert http.get("/_peer/state").json()["datasets"][0]["profile"] is True
    tagged = aep.call("GET", f"{CATALOG}/dataSets", params={"tags": "unifiedProfile:enabled:*"})
    assert list(tagged.json()) == [events["dataset"]]


def test_dataset_needs_a_known_schema(aep: Aep) -> None:
    schema = aep.schema("events", [EXPERIENCE_EVENT])
    for ref in (
        {"id": "https://ns.adobe.com/nobody/schemas/0", "contentType": "application/vnd.adobe.xed+json;version=1"},
        {"id": schema["$id"], "contentType": "application/json"},
        None,
    ):
        response = aep.call("POST", f"{CATALOG}/dataSets", json={"name": "x", "schemaRef": ref})
        assert response.status_code == 400, ref


def test_labels_with_etags(aep: Aep, events: dict[str, str]) -> None:
    path = f"/data/foundation/dataset/datasets/{events['dataset']}/labels"
    empty = aep.call("GET", path)
    assert empty.status_code == 200 and empty.headers["etag"]
    assert empty.json() == {
        f"AEP:dataset:{events['dataset']}": {"imsOrg": aep.config.org_id, "labels": [], "optionalLabels": []}
    }
    created = aep.call("POST", path, json={"labels": ["C2", "C5"]})
    assert created.status_code == 201
    assert created.json()["labels"] == ["C2", "C5"] and created.json()["code"] == "PES-201"
    # POST replaces existing labels, as PUT does (without If-Match): Adobe's docs say either call
    # overwrites the dataset's labels.
    assert aep.call("POST", path, json={"labels": ["C1"]}).json()["labels"] == ["C1"]
    assert aep.call("POST", path, json={"labels": ["C2", "C5"]}).status_code == 201
    current = aep.call("GET", path)
    etag = current.headers["etag"]
    assert current.json()[f"AEP:dataset:{events['dataset']}"]["labels"] == ["C2", "C5"]
    assert aep.call("PUT", path, json={"labels": ["C2", "C5", "C12"]}).status_code == 428
    assert aep.call("PUT", path, json={"labels": ["C12"]}, headers={"If-Match": "stale"}).status_code == 412
    updated = aep.call("PUT", path, json={"labels": ["C2", "C5", "C12"]}, headers={"If-Match": etag})
    assert updated.status_code == 200 and updated.json()["code"] == "PES-200"
    assert aep.call("GET", path).json()[f"AEP:dataset:{events['dataset']}"]["labels"] == ["C2", "C5", "C12"]
    assert aep.call("GET", "/data/foundation/dataset/datasets/000000000000000000000000/labels").status_code == 404

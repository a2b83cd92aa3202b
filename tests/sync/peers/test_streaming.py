"""Streaming ingestion: single and batch endpoints, envelope and record validation, the 207
answer, the 1 MB limit, Profile's limits, authentication, and what the peer keeps."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sync.peers.platform import PeerConfig
from tests.sync.peers.conftest import EXPERIENCE_EVENT, Aep, dumps, event
from tests.values import ECID, ORG, crm_id

EMAIL = "alice.martin@example.com"


def test_batch_answers_207_with_one_result_per_message(aep: Aep, events: dict[str, str]) -> None:
    good = aep.envelope(events["schema"], events["dataset"], event("e1"))
    bad_record = aep.envelope(events["schema"], events["dataset"], event("e2", timestamp="2018-00-10T22:07:56Z"))
    no_body = {"header": good["header"]}
    wrong_org = aep.envelope(events["schema"], events["dataset"], event("e3"))
    wrong_org["header"]["imsOrgId"] = ORG  # of the real form, but not the peer's
    unknown_dataset = aep.envelope(events["schema"], "000000000000000000000000", event("e4"))
    response = aep.stream([good, bad_record, no_body, wrong_org, unknown_dataset])
    assert response.status_code == 207
    body = response.json()
    assert body["inletId"] == aep.config.inlet_id and body["receivedTimeMs"] > 0
    results = body["responses"]
    assert len(results) == 5
    assert results[0] == {"xactionId": f"{body['batchId']}:0"}
    assert all(set(r) == {"statusCode", "message"} and r["statusCode"] == 400 for r in results[1:])
    prefix = f"inletId: [{aep.config.inlet_id}] imsOrgId: [{aep.config.org_id}] "
    assert results[1]["message"].startswith(prefix) and "is not a valid date-time" in results[1]["message"]
    assert results[2]["message"] == prefix + "Message has unknown xdm format"
    assert results[3]["message"] == prefix + "Message has an absent or wrong ims org in the header"
    assert "unknown dataset" in results[4]["message"]
    kept = aep.records(events["dataset"])
    assert [r["record"]["_id"] for r in kept] == ["e1"]
    assert kept[0]["xactionId"] == results[0]["xactionId"] and kept[0]["via"] == "streaming-batch"


def test_envelope_must_match_the_datasets_schema(aep: Aep, events: dict[str, str]) -> None:
    other = aep.schema("other events", [EXPERIENCE_EVENT])
    mismatch = aep.envelope(other["$id"], events["dataset"], event("e1"))
    bad_type = aep.envelope(events["schema"], events["dataset"], event("e2"))
    bad_type["header"]["schemaRef"]["contentType"] = "application/json"
    meta = aep.envelope(events["schema"], events["dataset"], event("e3"))
    meta["body"]["xdmMeta"] = {}
    no_entity = aep.envelope(events["schema"], events["dataset"], event("e4"))
    del no_entity["body"]["xdmEntity"]
    no_source = aep.envelope(events["schema"], events["dataset"], event("e5"))
    del no_source["header"]["source"], no_source["header"]["imsOrgId"]  # both are filled in by Adobe
    results = aep.stream([mismatch, bad_type, meta, no_entity, no_source]).json()["responses"]
    assert [r.get("statusCode") for r in results] == [400, 400, 400, 400, None]
    assert results[0]["message"].endswith("Message has unknown xdm format")
    assert results[3]["message"].endswith("Payload body is missing xdmEntity")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"_id": None}, "required key [_id] not found"),
        ({"timestamp": None}, "required key [timestamp] not found"),
        ({"timestamp": "2026-03-01 10:00:00"}, "is not a valid date-time"),
        ({"_id": 12}, "expected type: String, found: Long"),
        ({"identityMap": {"Email": [{"primary": True}]}}, "required key [id] not found"),
        ({"identityMap": {"Email": {"id": EMAIL}}}, "expected type: JSONArray, found: JSONObject"),
        ({"identityMap": {"Email": [{"id": EMAIL, "authenticatedState": "maybe"}]}}, "not a valid enum value"),
        (
            {"identityMap": {"Email": [{"id": EMAIL, "primary": True}], "ECID": [{"id": ECID, "primary": True}]}},
            "primary",
        ),
        ({"_TENANT": {"push": {"status": "lost"}}}, "not a valid enum value"),
        ({"_TENANT": {"push": {"attempts": -1}}}, "minimum"),
        ({"_TENANT": {"push": {"sentAt": "yesterday"}}}, "is not a valid date-time"),
        ({"_TENANT": {"push": {"extra": 1}}}, "extraneous key [extra] is not permitted"),
        ({"_TENANT": {"unknown": {}}}, "extraneous key [unknown] is not permitted"),
    ],
)
def test_records_are_checked_against_the_schema(
    aep: Aep, events: dict[str, str], change: dict[str, Any], words: str
) -> None:
    record = event("e1")
    for name, value in change.items():
        key = aep.tenant if name == "_TENANT" else name
        if value is None:
            del record[key]
        else:
            record[key] = value
    (result,) = aep.stream([aep.envelope(events["schema"], events["dataset"], record)]).json()["responses"]
    assert result["statusCode"] == 400 and words in result["message"], result
    assert aep.records(events["dataset"]) == []


def test_closed_schemas_refuse_unknown_top_level_fields(aep: Aep) -> None:
    schema = aep.schema("closed events", [EXPERIENCE_EVENT])
    dataset = aep.dataset("closed", schema["$id"])
    results = aep.stream(
        [
            aep.envelope(schema["$id"], dataset, event("e1", _experience={"campaign": {}})),
            aep.envelope(schema["$id"], dataset, event("e2", **{aep.tenant: {"x": 1}})),
            aep.envelope(schema["$id"], dataset, event("e3")),
        ]
    ).json()["responses"]
    assert "extraneous key [_experience]" in results[0]["message"]
    assert f"extraneous key [{aep.tenant}]" in results[1]["message"]
    assert "xactionId" in results[2]


def test_open_standard_field_groups_accept_their_fields(aep: Aep, events: dict[str, str]) -> None:
    record = event("e1", _experience={"campaign": {"message": {"id": "m"}}}, pushChannelContext={"platform": "apns"})
    record[aep.tenant] = {"push": {"status": "sent", "attempts": 1, "sentAt": "2026-03-01T10:00:00+01:00"}}
    (result,) = aep.stream([aep.envelope(events["schema"], events["dataset"], record)]).json()["responses"]
    assert "xactionId" in result


def test_single_message_endpoint_and_sync_validation(aep: Aep, events: dict[str, str]) -> None:
    path = f"/collection/{aep.config.inlet_id}"
    good = aep.envelope(events["schema"], events["dataset"], event("e1"))
    plain = aep.call("POST", path, json=good)
    assert plain.status_code == 200
    assert plain.json()["inletId"] == aep.config.inlet_id and plain.json()["syncValidation"] == {"skipped": True}
    assert plain.json()["xactionId"] and plain.json()["receivedTimeMs"] > 0
    synced = aep.call("POST", path, json=good, params={"syncValidation": "true"})
    assert synced.status_code == 200 and synced.json()["syncValidation"] == {"status": "pass"}
    bad = aep.envelope(events["schema"], events["dataset"], event("e2", _id=5, timestamp="never"))
    refused = aep.call("POST", path, json=bad, params={"syncValidation": "true"})
    assert refused.status_code == 400
    body = refused.json()
    assert body["type"] == "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"
    assert body["title"] == "Invalid XDM Message Format"
    (validation,) = body["report"]["cause"]["_streamingValidation"]
    assert validation["message"] == "2 schema violations found"
    assert {v["pointerToViolation"] for v in validation["causingExceptions"]} == {"#/_id", "#/timestamp"}
    assert [r["record"]["_id"] for r in aep.records(events["dataset"])] == ["e1", "e1"]


def test_duplicates_are_kept_in_arrival_order(aep: Aep, events: dict[str, str], http: httpx.Client) -> None:
    messages = [aep.envelope(events["schema"], events["dataset"], event(f"e{n}")) for n in (1, 2, 1)]
    aep.stream(messages)
    aep.stream(messages[:1])
    kept = aep.records(events["dataset"])
    assert [r["record"]["_id"] for r in kept] == ["e1", "e2", "e1", "e1"]
    assert [r["seq"] for r in kept] == sorted(r["seq"] for r in kept)
    dataset = http.get("/_peer/state").json()["datasets"][0]
    assert (dataset["records"], dataset["distinct_ids"], dataset["duplicates"]) == (4, 2, 2)


def test_more_than_one_mb_is_413(aep: Aep, events: dict[str, str]) -> None:
    one = aep.envelope(events["schema"], events["dataset"], event("e1"))
    size = len(dumps(one))
    many = [one] * (1_000_000 // size + 1)
    response = aep.stream(many)
    assert response.status_code == 413
    assert response.json()["status"] == 413 and "Payload" in response.json()["title"]
    fits = many[: (1_000_000 - 20) // (size + 1)]
    assert len(dumps({"messages": fits})) <= 1_000_000
    assert aep.stream(fits).status_code == 207
    big = aep.envelope(events["schema"], events["dataset"], event("e2", producedBy="x" * 1_000_001))
    assert aep.call("POST", f"/collection/{aep.config.inlet_id}", json=big).status_code == 413


def test_unknown_inlet_and_content_type(aep: Aep, events: dict[str, str]) -> None:
    good = aep.envelope(events["schema"], events["dataset"], event("e1"))
    assert aep.call("POST", "/collection/batch/0000", json={"messages": [good]}).status_code == 404
    text = aep.call(
        "POST",
        f"/collection/batch/{aep.config.inlet_id}",
        content=dumps({"messages": [good]}),
        headers={"Content-Type": "text/plain"},
    )
    assert text.status_code == 400
    assert aep.call("POST", f"/collection/batch/{aep.config.inlet_id}", json={"message": []}).status_code == 400


def test_authenticated_connection_needs_a_live_token(aep: Aep, events: dict[str, str], http: httpx.Client) -> None:
    body = {"messages": [aep.envelope(events["schema"], events["dataset"], event("e1"))]}
    path = f"/collection/batch/{aep.config.inlet_id}"
    missing = http.post(path, json=body)
    assert missing.status_code == 401
    assert missing.json()["type"] == "https://ns.adobe.com/adobecloud/problem/data-collection-service-authorization"
    assert missing.json()["report"]["message"].endswith("Ims service token is empty")
    invalid = http.post(path, json=body, headers={"Authorization": "Bearer forged"})
    assert invalid.status_code == 401 and invalid.json()["report"]["message"].endswith("Ims service token is invalid")
    assert http.post(path, json=body, headers={"Authorization": f"Bearer {aep.token()}"}).status_code == 207
    http.post("/_peer/time", json={"advance": 86400})
    assert http.post(path, json=body, headers={"Authorization": f"Bearer {aep.token()}"}).status_code == 401


@pytest.mark.parametrize("peer_config", [PeerConfig(require_streaming_auth=False)])
def test_unauthenticated_connection_takes_messages_without_a_token(
    aep: Aep, events: dict[str, str], http: httpx.Client
) -> None:
    body = {"messages": [aep.envelope(events["schema"], events["dataset"], event("e1"))]}
    assert http.post(f"/collection/batch/{aep.config.inlet_id}", json=body).status_code == 207


def test_profile_drops_are_failures(aep: Aep, profile_events: dict[str, str]) -> None:
    ids = profile_events
    too_big = event("big", producedBy="x" * 10_300)
    no_primary = event("anon", identityMap={"Email": [{"id": EMAIL}]})
    results = aep.stream(
        [
            aep.envelope(ids["schema"], ids["dataset"], event("ok")),
            aep.envelope(ids["schema"], ids["dataset"], too_big),
            aep.envelope(ids["schema"], ids["dataset"], no_primary),
            aep.envelope(ids["schema"], ids["dataset"], event("ok2")),
        ]
    ).json()["responses"]
    assert "xactionId" in results[0] and "xactionId" in results[3]
    assert results[1]["statusCode"] == 400 and "over 10KB" in results[1]["message"]
    assert results[2]["statusCode"] == 400 and "no primary identity" in results[2]["message"]
    assert [r["profile"] for r in aep.records(ids["dataset"])] == ["ingested", "ingested"]


@pytest.mark.parametrize("peer_config", [PeerConfig(strict_profile_limits=False)])
def test_lenient_profile_keeps_what_profile_drops(aep: Aep, profile_events: dict[str, str], http: httpx.Client) -> None:
    ids = profile_events
    results = aep.stream([aep.envelope(ids["schema"], ids["dataset"], event("big", producedBy="x" * 10_300))])
    assert "xactionId" in results.json()["responses"][0]
    (kept,) = aep.records(ids["dataset"])
    assert kept["profile"].startswith("dropped: the ExperienceEvent is")
    assert http.get("/_peer/state").json()["datasets"][1]["profile_dropped"] == 1


def test_a_dataset_not_enabled_for_profile_takes_big_events(aep: Aep, events: dict[str, str]) -> None:
    results = aep.stream([aep.envelope(events["schema"], events["dataset"], event("big", producedBy="x" * 20_000))])
    assert "xactionId" in results.json()["responses"][0]
    assert aep.records(events["dataset"])[0]["profile"] == "not enabled"


@pytest.mark.parametrize("peer_config", [PeerConfig(reject_invalid_records=False)])
def test_asynchronous_validation_moves_bad_records_to_failed(aep: Aep, events: dict[str, str]) -> None:
    bad = aep.envelope(events["schema"], events["dataset"], event("e1", timestamp="never"))
    (result,) = aep.stream([bad]).json()["responses"]
    assert "xactionId" in result  # taken by the Data Collection Core Service, dropped by validation
    assert aep.records(events["dataset"]) == []
    (failed,) = aep.records(events["dataset"], failed=True)
    assert failed["record"]["_id"] == "e1" and failed["errors"][0]["pointerToViolation"] == "#/timestamp"
    synced = aep.call("POST", f"/collection/{aep.config.inlet_id}", json=bad, params={"syncValidation": "true"})
    assert synced.status_code == 400


def test_profile_records_need_their_primary_identity(aep: Aep) -> None:
    group = aep.field_group("crm", {"crmId": {"type": "string"}}, extends="https://ns.adobe.com/xdm/context/profile")
    schema = aep.schema("profiles", ["https://ns.adobe.com/xdm/context/profile", group["$id"]])
    assert aep.descriptor(schema["$id"], f"/{aep.tenant}/crmId", namespace="CRMID").status_code == 201
    aep.enable_union(schema["$id"])
    dataset = aep.dataset("profiles", schema["$id"], profile=True)
    results = aep.stream(
        [
            aep.envelope(schema["$id"], dataset, {"_id": "p1", aep.tenant: {"crmId": crm_id(1)}}),
            aep.envelope(schema["$id"], dataset, {"_id": "p2", aep.tenant: {}}),
        ]
    ).json()["responses"]
    assert "xactionId" in results[0]
    assert results[1]["statusCode"] == 400 and "no primary identity" in results[1]["message"]

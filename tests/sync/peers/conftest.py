"""Fixtures for the local Experience Platform peer: a peer on loopback per test, an httpx client
over real HTTP, and :class:`Aep`, small helpers that make Adobe's calls the way a client would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from sync.peers.platform import PlatformPeer

EXPERIENCE_EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
PROFILE = "https://ns.adobe.com/xdm/context/profile"
IDENTITY_MAP = "https://ns.adobe.com/xdm/context/identitymap"
CONTENT_TYPE = "application/vnd.adobe.xed-full+json;version=1"
XED_ID = "application/vnd.adobe.xed-id+json"
XED = "application/vnd.adobe.xed+json; version=1"


class Aep:
    """Adobe's calls against the peer, with the headers a real client sends."""

    def __init__(self, peer: PlatformPeer, http: httpx.Client) -> None:
        self.peer = peer
        self.http = http
        self.config = peer.config
        self._token: str | None = None

    @property
    def tenant(self) -> str:
        return f"_{self.config.tenant_id}"

    def token(self) -> str:
        if self._token is None:
            form = {
                "grant_type": "client_credentials",
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret,
                "scope": "openid,AdobeID,read_organizations",
            }
            response = self.http.post("/ims/token/v3", data=form)
            assert response.status_code == 200, response.text
            self._token = str(response.json()["access_token"])
        return self._token

    def headers(self, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token()}",
            "x-api-key": self.config.client_id,
            "x-gw-ims-org-id": self.config.org_id,
            "x-sandbox-name": self.config.sandbox,
            **extra,
        }

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    # -- registry ------------------------------------------------------------------------------------

    def field_group(self, title: str, fields: dict[str, Any], *, extends: str = EXPERIENCE_EVENT) -> dict[str, Any]:
        body = {
            "title": title,
            "type": "object",
            "meta:intendedToExtend": [extends],
            "definitions": {
                "custom": {"properties": {self.tenant: {"type": "object", "properties": fields}}},
            },
            "allOf": [{"$ref": "#/definitions/custom"}],
        }
        response = self.call("POST", "/data/foundation/schemaregistry/tenant/fieldgroups", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def schema(self, title: str, refs: list[str], **extra: Any) -> dict[str, Any]:
        body = {"title": title, "type": "object", "allOf": [{"$ref": ref} for ref in refs], **extra}
        response = self.call("POST", "/data/foundation/schemaregistry/tenant/schemas", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def patch_schema(self, schema_id: str, operations: list[dict[str, Any]]) -> httpx.Response:
        return self.call(
            "PATCH", f"/data/foundation/schemaregistry/tenant/schemas/{quote(schema_id, safe='')}", json=operations
        )

    def enable_union(self, schema_id: str) -> None:
        response = self.patch_schema(schema_id, [{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}])
        assert response.status_code == 200, response.text

    def descriptor(self, schema_id: str, path: str, namespace: str = "Email", primary: bool = True) -> httpx.Response:
        body = {
            "@type": "xdm:descriptorIdentity",
            "xdm:sourceSchema": schema_id,
            "xdm:sourceVersion": 1,
            "xdm:sourceProperty": path,
            "xdm:namespace": namespace,
            "xdm:property": "xdm:code",
            "xdm:isPrimary": primary,
        }
        return self.call("POST", "/data/foundation/schemaregistry/tenant/descriptors", json=body)

    # -- catalog -------------------------------------------------------------------------------------

    def dataset(self, name: str, schema_id: str, *, profile: bool = False) -> str:
        body: dict[str, Any] = {
            "name": name,
            "schemaRef": {"id": schema_id, "contentType": "application/vnd.adobe.xed+json;version=1"},
        }
        if profile:
            body["tags"] = {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}
        response = self.call("POST", "/data/foundation/catalog/dataSets", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()[0]).rsplit("/", 1)[-1]

    # -- streaming -----------------------------------------------------------------------------------

    def envelope(self, schema_id: str, dataset_id: str, entity: dict[str, Any]) -> dict[str, Any]:
        ref = {"id": schema_id, "contentType": CONTENT_TYPE}
        return {
            "header": {
                "schemaRef": ref,
                "imsOrgId": self.config.org_id,
                "datasetId": dataset_id,
                "source": {"name": "pushgate tests"},
            },
            "body": {"xdmMeta": {"schemaRef": ref}, "xdmEntity": entity},
        }

    def stream(self, messages: list[Any], **kwargs: Any) -> httpx.Response:
        return self.call("POST", f"/collection/batch/{self.config.inlet_id}", json={"messages": messages}, **kwargs)

    def records(self, dataset_id: str, *, failed: bool = False) -> list[dict[str, Any]]:
        params = {"dataset": dataset_id, "failed": "true" if failed else "false"}
        return list(self.http.get("/_peer/records", params=params).json()["records"])


@pytest.fixture
def http(peer: PlatformPeer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=peer.url, timeout=10) as client:
        yield client


@pytest.fixture
def aep(peer: PlatformPeer, http: httpx.Client) -> Aep:
    return Aep(peer, http)


def event(record_id: str, **fields: Any) -> dict[str, Any]:
    """A minimal valid ExperienceEvent with a primary identity."""
    return {
        "_id": record_id,
        "timestamp": "2026-03-01T10:00:00.123Z",
        "eventType": "message.feedback",
        "identityMap": {
            "Email": [
                {"id": f"alice.martin+{record_id}@example.com", "primary": True, "authenticatedState": "ambiguous"}
            ]
        },
        **fields,
    }


@pytest.fixture
def events(aep: Aep) -> dict[str, str]:
    """An ExperienceEvent schema with a tenant field group, and a dataset on it (not for Profile)."""
    group = aep.field_group(
        "push feedback fields",
        {
            "push": {
                "type": "object",
                "properties": {
                    "status": {"type": "string", "enum": ["sent", "failed"]},
                    "attempts": {"type": "integer", "minimum": 0},
                    "sentAt": {"type": "string", "format": "date-time"},
                },
            }
        },
    )
    schema = aep.schema(
        "push feedback events",
        [
            EXPERIENCE_EVENT,
            "https://ns.adobe.com/experience/campaign/experienceevent-campaign-delivery-log",
            group["$id"],
        ],
    )
    return {
        "field_group": group["$id"],
        "schema": schema["$id"],
        "dataset": aep.dataset("push feedback", schema["$id"]),
    }


@pytest.fixture
def profile_events(aep: Aep, events: dict[str, str]) -> dict[str, str]:
    """The same schema enabled for Profile, with a Profile-enabled dataset."""
    aep.enable_union(events["schema"])
    return {**events, "dataset": aep.dataset("push feedback (profile)", events["schema"], profile=True)}


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
